"""The artefact store: content addresses, the local folder backend (atomic, idempotent, shared by processes) and
the S3 backend against a real S3-compatible server on loopback, with its cache of local copies."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import wait_until
from s3server import S3Server
from sqlalchemy import select

from watchkeeper.artefacts import (
    CHUNK_BYTES, ArtefactNotFoundError, LocalArtefactStore, LocalCopies, S3ArtefactStore, address_of, as_reference,
    local_media, open_artefact_store, referenced_address,
)
from watchkeeper.config import S3ArtefactSettings, Settings, load_settings
from watchkeeper.errors import ArtefactStoreError, ConfigError
from watchkeeper.store.db import Database
from watchkeeper.store.live import add_live_evidence, drop_evidence
from watchkeeper.store.models import Analysis, EvidenceReference, IncidentRecord
from watchkeeper.store.references import evidence_artefacts, name_evidence, referenced, release

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- addresses -------------------------------------------------------------------------------------


def test_an_address_is_the_content_hash_with_its_kind_and_references_say_artefact():
    address = address_of(sha256(JPEG), ".JPG")
    assert address == f"{sha256(JPEG)}.jpg"
    assert referenced_address(as_reference(address)) == address
    for not_a_reference in (None, "", address, "/srv/media/x.jpg", "artefact:../x.jpg", "artefact:" + "a" * 64):
        assert referenced_address(not_a_reference) is None
    with pytest.raises(ValueError):
        address_of("not-a-digest", "jpg")


# -- the local backend -------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalArtefactStore:
    return LocalArtefactStore(tmp_path / "artefacts")


def test_local_round_trip_sharded_by_the_hash(local: LocalArtefactStore, tmp_path: Path):
    address = local.put_bytes(JPEG, "jpg")
    digest = sha256(JPEG)
    assert address == f"{digest}.jpg" and local.exists(address)
    assert files_under(local.root) == [local.root / digest[:2] / digest[2:4] / address]
    opened = local.open(address)
    with opened.stream as stream:
        assert stream.read() == JPEG and opened.size_bytes == len(JPEG)
    with local.local_path(address) as path:
        assert path.read_bytes() == JPEG and path == local.path_on_disk(address)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # other hosts' services read the shared folder too
    with local_media(local, as_reference(address)) as media:
        assert Path(media) == path
    with local_media(local, "/srv/media/door.mp4") as media:  # a server path is its own file
        assert media == "/srv/media/door.mp4"
    local.delete(address)
    local.delete(address)  # nothing there: nothing happens
    assert not local.exists(address) and local.path_on_disk(address) is None
    with pytest.raises(ArtefactNotFoundError):
        local.open(address)
    with pytest.raises(ArtefactNotFoundError), local.local_path(address):
        pass
    with pytest.raises(ArtefactNotFoundError):
        local.open("../../etc/passwd")


def test_local_storing_the_same_bytes_twice_keeps_one_object(local: LocalArtefactStore, tmp_path: Path):
    source = tmp_path / "lobby.jpg"
    source.write_bytes(JPEG)
    first = local.put_file(source, ".jpg")
    written = local.path_on_disk(first).stat()
    assert local.put_bytes(JPEG, "jpg") == first and local.put_file(source, "jpg", sha256=sha256(JPEG)) == first
    again = local.path_on_disk(first).stat()
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # not even written again
    assert len(files_under(local.root)) == 1
    assert local.put_bytes(JPEG + b"\0", "jpg") != first and len(files_under(local.root)) == 2


_PUT_FROM_FILE = """
import sys
from pathlib import Path
from watchkeeper.artefacts import LocalArtefactStore
root, source, digest = sys.argv[1:4]
LocalArtefactStore(Path(root)).put_file(Path(source), "mp4", sha256=digest)
"""


def test_a_writer_killed_mid_write_leaves_no_object(local: LocalArtefactStore, tmp_path: Path):
    data = os.urandom(3 * CHUNK_BYTES)
    address = address_of(sha256(data), "mp4")
    pipe = tmp_path / "incoming"
    os.mkfifo(pipe)  # the writer reads its source from here, so the test decides how far it gets
    writer = subprocess.Popen([sys.executable, "-c", _PUT_FROM_FILE, str(local.root), str(pipe), sha256(data)])
    try:
        with pipe.open("wb") as feed:
            feed.write(data[:CHUNK_BYTES + 4096])
            feed.flush()
            wait_until(lambda: any(p.stat().st_size > 0 for p in files_under(local.root)), "the write under way", 30)
            writer.send_signal(signal.SIGKILL)
            writer.wait(30)
    except BrokenPipeError:  # the writer died before the pipe closed
        pass
    assert writer.returncode == -signal.SIGKILL
    assert not local.exists(address) and local.path_on_disk(address) is None
    [leftover] = files_under(local.root)
    assert leftover.name.startswith(".") and leftover.name.endswith(".part")  # hidden, never taken for an object
    assert local.put_bytes(data, "mp4") == address and local.path_on_disk(address).read_bytes() == data


_PUT_WHEN_TOLD = """
import sys, time
from pathlib import Path
from watchkeeper.artefacts import LocalArtefactStore
root, source, go = map(Path, sys.argv[1:4])
store = LocalArtefactStore(root)
while not go.exists():
    time.sleep(0.001)
print(store.put_file(source, "mp4"))
"""


def test_concurrent_writers_of_the_same_bytes_leave_one_whole_object(local: LocalArtefactStore, tmp_path: Path):
    data = os.urandom(8 * CHUNK_BYTES)
    source, go = tmp_path / "clip.mp4", tmp_path / "go"
    source.write_bytes(data)
    writers = [subprocess.Popen([sys.executable, "-c", _PUT_WHEN_TOLD, str(local.root), str(source), str(go)],
                                stdout=subprocess.PIPE, text=True) for _ in range(4)]
    time.sleep(1.0)  # every writer started and waiting
    go.touch()
    addresses = {writer.communicate(timeout=60)[0].strip() for writer in writers}
    assert all(writer.returncode == 0 for writer in writers)
    assert addresses == {address_of(sha256(data), "mp4")}
    [only] = files_under(local.root)  # one object, no temporary file left behind
    assert only.name == addresses.pop() and only.read_bytes() == data


# -- the s3 backend --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


def s3_store(s3: S3Server, tmp_path: Path, *, cache_bytes: int = 10**9, **s3_settings) -> S3ArtefactStore:
    settings = S3ArtefactSettings.model_validate(s3.settings(s3.new_bucket(), **s3_settings)["s3"])
    return S3ArtefactStore(settings, LocalCopies(tmp_path / "cache", cache_bytes))


def test_s3_round_trip_over_http(s3: S3Server, tmp_path: Path):
    store = s3_store(s3, tmp_path, prefix="site-a/")
    address = store.put_bytes(JPEG, "jpg")
    assert store.exists(address) and not store.exists(address_of(sha256(b"other"), "jpg"))
    listed = s3.client().list_objects_v2(Bucket=store.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"site-a/{address[:2]}/{address}"]
    head = s3.client().head_object(Bucket=store.bucket, Key=listed[0]["Key"])
    assert head["ContentType"] == "image/jpeg"
    opened = store.open(address)
    assert opened.size_bytes == len(JPEG) and b"".join(opened.chunks()) == JPEG
    with store.local_path(address) as path:
        assert path.read_bytes() == JPEG and path.parent == tmp_path / "cache"
    assert store.path_on_disk(address) is None  # nothing of the bucket is a file here
    store.delete(address)
    assert not store.exists(address)
    with pytest.raises(ArtefactNotFoundError):
        store.open(address)
    with pytest.raises(ArtefactNotFoundError), store.local_path(address_of(sha256(b"never"), "wav")):
        pass


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_range_of_an_object_is_read_alone_and_its_size_known(backend, s3: S3Server, tmp_path: Path):
    store = LocalArtefactStore(tmp_path / "artefacts") if backend == "local" else s3_store(s3, tmp_path)
    data = bytes(range(256)) * (3 * CHUNK_BYTES // 256 + 7)  # several chunks
    address = store.put_bytes(data, "mp4")
    assert store.size(address) == len(data)
    for first, last in ((0, 0), (10, 20), (CHUNK_BYTES - 5, 2 * CHUNK_BYTES + 5), (len(data) - 3, len(data) - 1)):
        opened = store.open(address, (first, last))
        assert opened.size_bytes == last - first + 1 and b"".join(opened.chunks()) == data[first:last + 1]
    with pytest.raises(ArtefactNotFoundError):
        store.size(address_of(sha256(b"never"), "mp4"))


def test_s3_storing_the_same_bytes_twice_keeps_one_object(s3: S3Server, tmp_path: Path):
    store = s3_store(s3, tmp_path)
    source = tmp_path / "alarm.wav"
    source.write_bytes(b"RIFF" + bytes(5000))
    address = store.put_file(source, "wav")
    stamp = s3.client().head_object(Bucket=store.bucket, Key=f"{store.prefix}{address[:2]}/{address}")["ETag"]
    assert store.put_bytes(source.read_bytes(), ".wav") == address
    listed = s3.client().list_objects_v2(Bucket=store.bucket)["Contents"]
    assert len(listed) == 1 and listed[0]["ETag"] == stamp


def test_s3_copies_are_kept_for_tools_and_the_least_recently_used_go_unless_in_use(s3: S3Server, tmp_path: Path):
    store = s3_store(s3, tmp_path, cache_bytes=2500)
    a, b, c = (store.put_bytes(bytes([n]) * 1000, "wav") for n in range(3))
    cache = tmp_path / "cache"

    def use(address: str) -> None:
        with store.local_path(address) as path:
            assert path.read_bytes() == bytes([(a, b, c).index(address)]) * 1000
        time.sleep(0.05)  # file times are coarse: one use clearly after the other

    for address in (a, b, c):
        use(address)
    assert sorted(p.name for p in cache.iterdir()) == sorted([b, c])  # a, the least recently used, went
    s3.client().delete_object(Bucket=store.bucket, Key=f"{store.prefix}{c[:2]}/{c}")
    use(c)  # a copy is never stale (the address is the content): no need to ask the bucket
    with store.local_path(b) as held:
        time.sleep(0.05)
        use(c)
        use(a)  # over the budget again: b is the least recently used, but in use, so c goes
        assert held.read_bytes() == bytes([1]) * 1000
    assert sorted(p.name for p in cache.iterdir()) == sorted([a, b])


def test_s3_failures_are_artefact_store_errors(tmp_path: Path):
    unreachable = S3ArtefactSettings(bucket="nowhere", endpoint_url="http://127.0.0.1:9", access_key_id="x",
                                     secret_access_key="y", region="us-east-1")
    store = S3ArtefactStore(unreachable.model_copy(update={"addressing_style": "path"}),
                            LocalCopies(tmp_path / "cache", 10**6))
    with pytest.raises(ArtefactStoreError, match="s3://nowhere/watchkeeper/"):
        store.put_bytes(JPEG, "jpg")
    # Storage that does not answer holds a camera's analysis for seconds, not minutes.
    config = store._client.meta.config
    assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (5, 30, 3)
    assert config.s3 == {"addressing_style": "path"}


# -- settings ------------------------------------------------------------------------------------------


def test_the_backend_comes_from_the_settings_and_the_environment(s3: S3Server, tmp_path: Path, monkeypatch):
    default = open_artefact_store(Settings(data_dir=tmp_path))
    assert isinstance(default, LocalArtefactStore) and default.root == tmp_path / "artefacts"
    shared = open_artefact_store(Settings(data_dir=tmp_path, artefacts={"local": {"path": tmp_path / "nfs"}}))
    assert isinstance(shared, LocalArtefactStore) and shared.root == tmp_path / "nfs"
    bucket = s3.new_bucket()
    env = {"WATCHKEEPER_DATA_DIR": str(tmp_path), "WATCHKEEPER_ARTEFACTS__BACKEND": "s3",
           "WATCHKEEPER_ARTEFACTS__S3__BUCKET": bucket, "WATCHKEEPER_ARTEFACTS__S3__ENDPOINT_URL": s3.url,
           "WATCHKEEPER_ARTEFACTS__S3__REGION": "us-east-1", "WATCHKEEPER_ARTEFACTS__CACHE_MAX_GB": "0.5"}
    # No keys in the settings: boto3's own chain finds them, here in AWS's variables.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret")
    store = open_artefact_store(load_settings(env=env, dotenv=None))
    assert isinstance(store, S3ArtefactStore) and store.bucket == bucket
    assert store.copies.folder == tmp_path / "artefact-cache" and store.copies.max_bytes == 2**29
    assert store.exists(store.put_bytes(JPEG, "jpg"))
    with pytest.raises(ConfigError, match="artefacts.s3.bucket"):
        load_settings(env={"WATCHKEEPER_ARTEFACTS__BACKEND": "s3"}, dotenv=None)
    with pytest.raises(ConfigError, match="artefacts.backend"):
        load_settings(env={"WATCHKEEPER_ARTEFACTS__BACKEND": "ftp"}, dotenv=None)


# -- rows that refer to objects ------------------------------------------------------------------------


class _FailingDeletes(LocalArtefactStore):
    def __init__(self, root: Path, failing: set[str]) -> None:
        super().__init__(root)
        self.failing = failing

    def delete(self, address: str) -> None:
        if address in self.failing:
            raise ArtefactStoreError(f"{address}: the storage is down")
        super().delete(address)


def test_dropped_evidence_leaves_the_row_changed_when_an_object_cannot_be_deleted(db: Database, tmp_path: Path):
    store = _FailingDeletes(tmp_path / "artefacts", set())
    snapshot, close_up = store.put_bytes(JPEG, "jpg"), store.put_bytes(JPEG + b"crop", "jpg")
    deleted_first, failing = sorted((snapshot, close_up))  # release deletes in this order
    store.failing.add(failing)
    live = {"evidence": {"snapshot": as_reference(snapshot), "weapon": as_reference(close_up), "clip": None},
            "evidence_bytes": 2 * len(JPEG)}
    _live_incident(db, live)
    with db.session() as session:
        dropped = drop_evidence(session, store, session.get(IncidentRecord, 1), ("snapshot", "weapon"))
        assert set(dropped) == {"snapshot", "weapon"} and store.exists(snapshot)  # nothing goes before commit
    with db.session(write=False) as session:
        assert evidence_artefacts(session.get(IncidentRecord, 1).data) == {}
    assert not store.exists(deleted_first) and store.exists(failing)  # left behind, named by no row


def test_the_finished_clip_does_not_bring_back_a_snapshot_deleted_meanwhile(db: Database, tmp_path: Path):
    store = LocalArtefactStore(tmp_path / "artefacts")
    snapshot = as_reference(store.put_bytes(JPEG, "jpg"))
    _live_incident(db, {"evidence": {"snapshot": snapshot, "clip": None}, "evidence_bytes": len(JPEG)})
    with db.session() as session:
        drop_evidence(session, store, session.get(IncidentRecord, 1), ("snapshot",))
    clip = as_reference(store.put_bytes(b"a clip", "mp4"))
    with db.session() as session:
        assert add_live_evidence(session, 1, evidence={"clip": clip, "audio": None}, evidence_bytes=10,
                                 evidence_errors=["audio.wav not stored"], artefacts=store)
        assert not add_live_evidence(session, 2, evidence={}, evidence_bytes=0, evidence_errors=[], artefacts=store)
    with db.session(write=False) as session:
        live = session.get(IncidentRecord, 1).data["live"]
    assert live == {"evidence": {"snapshot": None, "clip": clip, "audio": None}, "evidence_bytes": 10,
                    "evidence_errors": ["audio.wav not stored"]}


def test_evidence_deleted_before_its_incident_names_it_is_named_among_the_errors_instead(db: Database,
                                                                                         tmp_path: Path):
    """A release that saw no row naming the same bytes deleted the clip between its storing and its row: the row
    does not name an object that is gone."""
    store = LocalArtefactStore(tmp_path / "artefacts")
    _live_incident(db, {"evidence": {"snapshot": None, "clip": None, "audio": None}, "evidence_bytes": 0})
    clip, audio = store.put_bytes(b"a clip", "mp4"), store.put_bytes(b"a sound", "wav")
    with db.session() as session:
        release(session, store, [clip])  # no row names it yet
    with db.session() as session:
        assert add_live_evidence(session, 1, evidence={"clip": as_reference(clip), "audio": as_reference(audio)},
                                 evidence_bytes=13, evidence_errors=[], artefacts=store)
    with db.session(write=False) as session:
        live = session.get(IncidentRecord, 1).data["live"]
    assert live["evidence"] == {"snapshot": None, "clip": None, "audio": as_reference(audio)}
    assert live["evidence_errors"] == ["clip went from the artefact store before the incident named it"]


def _live_incident(db: Database, live: dict) -> None:
    """Incident row 1, a live one with ``live`` as its live data (its evidence named, as the product does)."""
    with db.session() as session:
        session.add(Analysis(id="a1", source="camera", media_type="video", crime_detected=True, result={}))
        record = IncidentRecord(id=1, analysis_id="a1", category="c", category_name="C", severity=3,
                                confidence=0.9, t_start_s=0, t_end_s=1, summary="", camera="hall",
                                requires_immediate_action=False, modalities=[], data={"live": live})
        session.add(record)
        name_evidence(session, record)


def _named(db: Database) -> dict[str, str]:
    with db.session(write=False) as session:
        return dict(session.execute(select(EvidenceReference.kind, EvidenceReference.address)
                                    .where(EvidenceReference.incident_id == 1)).all())


def test_the_references_table_follows_the_evidence_an_incident_names(db: Database, tmp_path: Path):
    """``evidence_references`` is what ``release`` asks: it names what the row's evidence names, through the
    evidence added after the incident opened and the evidence dropped, and goes with the row."""
    store = LocalArtefactStore(tmp_path / "artefacts")
    snapshot, clip = store.put_bytes(JPEG, "jpg"), store.put_bytes(b"a clip", "mp4")
    _live_incident(db, {"evidence": {"snapshot": as_reference(snapshot), "clip": None}, "evidence_bytes": 4})
    assert _named(db) == {"snapshot": snapshot}
    with db.session() as session:
        add_live_evidence(session, 1, evidence={"clip": as_reference(clip)}, evidence_bytes=6, evidence_errors=[],
                          artefacts=store)
    assert _named(db) == {"snapshot": snapshot, "clip": clip}
    with db.session() as session:
        drop_evidence(session, store, session.get(IncidentRecord, 1), ("snapshot",))
    assert _named(db) == {"clip": clip} and not store.exists(snapshot)
    with db.session() as session:
        assert referenced(session, [clip, snapshot]) == {clip}
        session.delete(session.get(IncidentRecord, 1))
    assert _named(db) == {}
    with db.session() as session:
        assert release(session, store, [clip]) == 1
