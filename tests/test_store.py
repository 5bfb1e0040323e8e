"""The database layer on real SQLite files and a real PostgreSQL server: migrations, sessions, analyses, purge."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, inspect, select, text, update

from watchkeeper.artefacts import LocalArtefactStore, as_reference
from watchkeeper.config import Settings
from watchkeeper.domain import AnalysisResult
from watchkeeper.samples import siren, write_audio
from watchkeeper.store import Database, open_database, resolve_database_url
from watchkeeper.store.analyses import save_analysis
from watchkeeper.store.db import alembic_config
from watchkeeper.store.models import (
    Analysis, ApiKey, AuditEntry, Base, Delivery, DeliveryAttempt, DetectionRecord, EvidenceReference,
    IncidentRecord, Job, LoginSession, Upload, User, utcnow,
)
from watchkeeper.store.purge import purge


@pytest.fixture(scope="module")
def siren_result(pipeline, tmp_path_factory) -> AnalysisResult:
    """A real analysis with incidents and evidence: a siren is an alarm."""
    path = write_audio(tmp_path_factory.mktemp("store-media") / "siren.wav", siren(3.0))
    result = pipeline.analyze(path)
    assert result.incidents and all(i.evidence for i in result.incidents)
    return result


def head_revision(connection: Connection) -> str:
    return ScriptDirectory.from_config(alembic_config(connection)).get_current_head()


# -- opening -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("configured", "expected"), [
    ("postgres://u:p@db:5432/wk", "postgresql+psycopg://u:p@db:5432/wk"),
    ("postgresql://u@db/wk", "postgresql+psycopg://u@db/wk"),
    ("postgresql+psycopg://u@db/wk", "postgresql+psycopg://u@db/wk"),
    ("sqlite:////srv/wk.db", "sqlite:////srv/wk.db"),
])
def test_configured_urls_get_the_psycopg_driver(configured, expected):
    assert resolve_database_url(Settings(database_url=configured)) == expected


def test_default_is_wal_sqlite_in_the_data_folder_with_every_table(tmp_path):
    data_dir = tmp_path / "not" / "yet" / "there"
    assert resolve_database_url(Settings(data_dir=data_dir)) == f"sqlite:///{data_dir}/watchkeeper.db"
    db = open_database(Settings(data_dir=data_dir))
    try:
        assert (data_dir / "watchkeeper.db").is_file() and db.dialect == "sqlite"
        with db.engine.connect() as connection:
            pragmas = [connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                       for name in ("journal_mode", "foreign_keys", "busy_timeout")]
        assert pragmas == ["wal", 1, 30000]
        assert set(inspect(db.engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    finally:
        db.close()


def test_migrations_create_exactly_the_models_and_rerun_as_no_ops(db):
    db.upgrade()  # a second time: nothing to do
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == head_revision(connection)


def test_analyses_of_the_first_schema_keep_the_file_they_were_read_from(new_database_url):
    """0002 adds analyses.media_path: absolute paths (what jobs stored) become it; URLs and client names do not."""
    db = Database(new_database_url)
    try:
        with db.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
            for row_id, source in (("a", "/srv/media/cam1.mp4"), ("b", "https://cams.example/1.jpg")):
                connection.execute(text(
                    "INSERT INTO analyses (id, source, media_type, provider, config_hash, crime_detected, result,"
                    " created_at) VALUES (:id, :source, 'video', 'local', '', false, '{}', CURRENT_TIMESTAMP)"
                ), {"id": row_id, "source": source})
        db.upgrade()
        with db.session(write=False) as session:
            paths = dict(session.execute(select(Analysis.id, Analysis.media_path)).all())
        assert paths == {"a": "/srv/media/cam1.mp4", "b": None}
    finally:
        db.close()


def test_live_incidents_of_earlier_schemas_get_their_evidence_references(new_database_url):
    """0009 fills evidence_references from the incidents' JSON: the stored pieces of camera incidents, not paths
    from before the artefact store, nor an uploaded file's incident."""
    clip, snapshot = "a" * 64 + ".mp4", "b" * 64 + ".jpg"
    rows = [(1, "hall", {"live": {"evidence": {"clip": as_reference(clip), "snapshot": as_reference(snapshot),
                                               "audio": None}}}),
            (2, "gate", {"live": {"evidence": {"clip": "/srv/evidence/gate/clip.mp4"}}}),
            (3, None, {"live": {"evidence": {"clip": as_reference(clip)}}})]
    db = Database(new_database_url)
    try:
        with db.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0008")
            connection.execute(text(
                "INSERT INTO analyses (id, source, media_type, provider, config_hash, crime_detected, result,"
                " created_at) VALUES ('a', 'cam', 'video', 'local', '', true, '{}', CURRENT_TIMESTAMP)"))
            for row_id, camera, data in rows:
                connection.execute(text(
                    "INSERT INTO incidents (id, analysis_id, category, category_name, severity, confidence, status,"
                    " t_start_s, t_end_s, summary, requires_immediate_action, camera, modalities, data, created_at,"
                    " updated_at) VALUES (:id, 'a', 'alarm', 'Alarm', 3, 0.9, 'open', 0, 1, '', false, :camera,"
                    " '[]', :data, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                    {"id": row_id, "camera": camera, "data": json.dumps(data)})
        db.upgrade()
        with db.session(write=False) as session:
            named = set(session.execute(select(EvidenceReference.incident_id, EvidenceReference.kind,
                                               EvidenceReference.address)).all())
        assert named == {(1, "clip", clip), (1, "snapshot", snapshot)}
    finally:
        db.close()


def test_servers_starting_together_migrate_once(new_database_url):
    errors: list[Exception] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            open_database(Settings(database_url=new_database_url)).close()
        except Exception as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db = Database(new_database_url)
    with db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == (head_revision(connection),)
    db.close()


def test_downgrade_to_nothing_and_back(new_database_url):
    db = Database(new_database_url)
    db.upgrade()
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    db.upgrade()
    assert set(inspect(db.engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    db.close()


# -- sessions ----------------------------------------------------------------------------------

def test_session_commits_or_rolls_back_and_times_come_back_in_utc(db):
    with db.session() as session:
        session.add(User(name="ada", role="admin"))
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(User(name="bob", role="viewer"))
        session.flush()
        raise RuntimeError("boom")
    with db.session(write=False) as session:
        users = session.scalars(select(User)).all()
    assert [u.name for u in users] == ["ada"]
    assert users[0].created_at.utcoffset() == timedelta(0)


def test_read_then_write_transactions_from_many_threads_lose_no_update(db):
    """Many threads read a counter and write it back; every increment survives on both backends."""
    with db.session() as session:
        session.add(Job(id="counter", kind="count", params={}))
    threads_n, rounds = 6, 15
    start = threading.Barrier(threads_n)

    def bump() -> None:
        start.wait()
        for _ in range(rounds):
            with db.session() as session:
                job = session.get(Job, "counter", with_for_update=True)
                job.attempts = job.attempts + 1

    threads = [threading.Thread(target=bump) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.session(write=False) as session:
        assert session.get(Job, "counter").attempts == threads_n * rounds


def test_readers_do_not_wait_for_a_writer(db):
    writing, read_done = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with db.session() as session:
            session.add(User(name="pending", role="viewer"))
            session.flush()
            writing.set()
            read_done.wait(60)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    writing.wait(60)
    with db.session(write=False) as session:
        assert session.scalars(select(User.name)).all() == []  # the writer has not committed yet
    read_done.set()
    writer.join()
    with db.session(write=False) as session:
        assert session.scalars(select(User.name)).all() == ["pending"]


# -- analyses ----------------------------------------------------------------------------------

def test_analysis_is_stored_with_its_incidents_and_their_evidence(db, siren_result):
    with db.session() as session:
        saved = save_analysis(session, siren_result, source="uploads/siren.wav", camera="gate")
        analysis_id = saved.id
    with db.session(write=False) as session:
        row = session.get(Analysis, analysis_id)
        assert AnalysisResult.model_validate(row.result) == siren_result
        assert (row.source, row.media_type, row.camera, row.crime_detected, row.crime_type) == (
            "uploads/siren.wav", "audio", "gate", True, siren_result.crime_type)
        assert row.media_sha256 == siren_result.media.sha256
        assert row.max_severity == max(i.severity for i in siren_result.incidents)
        stored = sorted(row.incidents, key=lambda r: r.id)
        assert [r.data for r in stored] == [i.model_dump(mode="json") for i in siren_result.incidents]
        for record, incident in zip(stored, siren_result.incidents):
            assert (record.category, record.status, record.camera) == (incident.category, "open", "gate")
            assert [(d.analyzer, d.label, d.score, d.contribution) for d in record.detections] == [
                (e.detection.analyzer, e.detection.label, e.detection.score, e.contribution)
                for e in incident.evidence
            ]


# -- purge -------------------------------------------------------------------------------------

def test_purge_takes_old_live_incidents_evidence_with_them_unless_another_row_keeps_it(db, siren_result, tmp_path):
    from watchkeeper.store.live import open_live_incident

    artefacts = LocalArtefactStore(tmp_path / "artefacts")
    old_clip, new_clip = artefacts.put_bytes(b"old clip", "mp4"), artefacts.put_bytes(b"new clip", "mp4")
    snapshot, sound = artefacts.put_bytes(b"\xff\xd8\xff snapshot", "jpg"), artefacts.put_bytes(b"RIFF", "wav")
    legacy = tmp_path / "evidence" / "hall" / "clip.mp4"  # a path from before the store: never deleted by a row
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"clip")
    with db.session() as session:
        for created, evidence in ((utcnow() - timedelta(days=40), {"clip": old_clip, "snapshot": snapshot,
                                                                    "audio": sound}),
                                  (utcnow(), {"clip": new_clip, "audio": sound}),
                                  (utcnow() - timedelta(days=40), {"clip": str(legacy)})):
            references = {kind: value if value.startswith("/") else as_reference(value)
                          for kind, value in evidence.items()}
            row = open_live_incident(session, siren_result, siren_result.incidents[0], camera="hall", source="cam",
                                     live={"evidence": references}, artefacts=artefacts)
            session.execute(update(Analysis).where(Analysis.id == session.get(IncidentRecord, row).analysis_id)
                            .values(created_at=created))
        # Someone uploaded the old incident's snapshot: one object for both rows.
        session.add(Upload(filename="snapshot.jpg", artefact=snapshot, original_name="snapshot.jpg", size_bytes=14,
                           sha256=snapshot[:64], media_type="image"))
    counts = purge(db, utcnow() - timedelta(days=30), artefacts=artefacts)
    assert counts["evidence_files"] == 1 and counts["analyses"] == 2
    assert not artefacts.exists(old_clip) and legacy.exists()
    assert all(artefacts.exists(kept) for kept in (new_clip, sound, snapshot))


def test_purge_deletes_what_is_older_and_keeps_the_rest(db, siren_result, tmp_path):
    now = utcnow()
    old, cutoff = now - timedelta(days=40), now - timedelta(days=30)
    artefacts = LocalArtefactStore(tmp_path / "artefacts")
    old_wav, new_wav = artefacts.put_bytes(b"RIFF old", "wav"), artefacts.put_bytes(b"RIFF new", "wav")
    with db.session() as session:
        old_user = User(name="old", role="operator", created_at=old)
        new_user = User(name="new", role="viewer")
        session.add_all([old_user, new_user])
        session.flush()
        session.add_all([
            ApiKey(user_id=old_user.id, name="k1", prefix="wk_a", key_hash="a" * 64, role="operator"),
            ApiKey(user_id=new_user.id, name="k2", prefix="wk_b", key_hash="b" * 64, role="viewer", created_at=old),
            ApiKey(user_id=new_user.id, name="k3", prefix="wk_c", key_hash="c" * 64, role="viewer"),
            LoginSession(user_id=new_user.id, token_hash="1" * 64, csrf_token="x", expires_at=old),
            LoginSession(user_id=new_user.id, token_hash="2" * 64, csrf_token="x", expires_at=now + timedelta(1),
                         revoked_at=old),
            LoginSession(user_id=old_user.id, token_hash="3" * 64, csrf_token="x", expires_at=now + timedelta(1)),
            Job(id="old_done", kind="analyze", params={}, state="succeeded", created_at=old, finished_at=old),
            Job(id="old_pending", kind="analyze", params={}, created_at=old),
            Job(id="new_done", kind="analyze", params={}, state="failed", finished_at=now),
            Upload(filename="old.wav", artefact=old_wav, original_name="a.wav", size_bytes=8, sha256=old_wav[:64],
                   media_type="audio", created_at=old),
            Upload(filename="gone.wav", original_name="b.wav", size_bytes=4, sha256="0" * 64, media_type="audio",
                   created_at=old),
            Upload(filename="new.wav", artefact=new_wav, original_name="c.wav", size_bytes=8, sha256=new_wav[:64],
                   media_type="audio"),
            AuditEntry(actor_name="old", via="cli", action="user.create", at=old),
            AuditEntry(actor_name="new", via="cli", action="user.create"),
        ])
        for state, created in [("delivered", old), ("dead", old), ("pending", old), ("delivered", now)]:
            delivery = Delivery(channel="webhook", target="https://example.org/hook", event="job.finished",
                                payload={}, state=state, created_at=created)
            delivery.log = [DeliveryAttempt(ok=False, duration_ms=1.0), DeliveryAttempt(ok=True, duration_ms=1.0)]
            session.add(delivery)
        session.flush()  # the job rows first: analyses name them, with no relationship to order the inserts
        old_analysis = save_analysis(session, siren_result, source="old.wav", job_id="old_done").id
        new_analysis = save_analysis(session, siren_result, source="new.wav").id
        session.execute(update(Analysis).where(Analysis.id == old_analysis).values(created_at=old))

    incidents_n = len(siren_result.incidents)
    evidence_n = sum(len(i.evidence) for i in siren_result.incidents)
    counts = purge(db, cutoff, artefacts=artefacts)
    assert counts == {
        "analyses": 1, "incidents": incidents_n, "detections": evidence_n, "jobs": 1, "deliveries": 2,
        "delivery_attempts": 4, "uploads": 2, "upload_files": 1, "evidence_files": 0, "audit_log": 1, "sessions": 2,
    }
    assert not artefacts.exists(old_wav) and artefacts.exists(new_wav)

    def remaining(column):
        with db.session(write=False) as session:
            return sorted(session.scalars(select(column)))

    assert remaining(Analysis.id) == [new_analysis]
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(IncidentRecord)) == incidents_n
        assert session.scalar(select(func.count()).select_from(DetectionRecord)) == evidence_n
        assert session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 4
    assert remaining(Job.id) == ["new_done", "old_pending"]
    assert remaining(Delivery.state) == ["delivered", "pending"]
    assert remaining(Upload.filename) == ["new.wav"]
    assert remaining(AuditEntry.actor_name) == ["new"]
    assert remaining(LoginSession.token_hash) == ["3" * 64]
    assert remaining(User.name) == ["new", "old"]

    # Without --keep-users the old account goes too, with its keys and sessions, and so do old keys.
    counts = purge(db, cutoff, keep_users=False, artefacts=artefacts)
    assert (counts["users"], counts["api_keys"], counts["sessions"]) == (1, 2, 1)
    assert remaining(User.name) == ["new"]
    assert remaining(ApiKey.name) == ["k3"]
    assert sum(counts[table] for table in ("analyses", "jobs", "uploads", "upload_files", "audit_log")) == 0


# -- users -------------------------------------------------------------------------------------

def test_user_names_are_unique_regardless_of_case(db):
    from sqlalchemy.exc import IntegrityError

    with db.session() as session:
        session.add(User(name="Carol", role="viewer"))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(User(name="carol", role="viewer"))
    with db.session(write=False) as session:
        assert session.scalars(select(User.name)).all() == ["Carol"]
