"""The server's cameras: incidents stored as they open, grow and end, evidence linked, events fanned out."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mediagen import noise, still_room, write_video
from PIL import Image
from skimage import data as skdata
from sqlalchemy import select

from watchkeeper.artefacts import LocalArtefactStore, referenced_address
from watchkeeper.config import CameraSettings, Settings
from watchkeeper.errors import ArtefactStoreError, ConflictError, NotFoundError
from watchkeeper.live.monitor import tier_pipelines
from watchkeeper.live.service import LiveService, redact_url
from watchkeeper.media import load_media
from watchkeeper.samples import siren
from watchkeeper.store.db import Database
from watchkeeper.store.models import Analysis, IncidentRecord

FPS = 15


@pytest.fixture(scope="module")
def pipelines():
    return tier_pipelines(Settings())


@pytest.fixture(scope="module")
def hall(tmp_path_factory):
    audio = np.concatenate([noise(1.0), siren(5.0), noise(6.0)])
    return write_video(tmp_path_factory.mktemp("cams") / "hall.mp4",
                       (still_room(seed=i % 3) for i in range(12 * FPS)), fps=FPS, audio=audio)


def test_the_weapon_detector_searches_every_window_with_someone_in_view(pipelines):
    """Tier 1 (every window) runs it on the frames with people; tier 2 (candidate windows) on all frames."""
    tier1, tier2 = pipelines
    assert "weapons" in tier1.enabled_analyzer_names() and tier1.settings.analyzers.weapons.only_with_people
    assert "weapons" in tier2.enabled_analyzer_names() and not tier2.settings.analyzers.weapons.only_with_people


def test_a_candidate_windows_tier_2_takes_what_tier_1_computed_alike(pipelines, tmp_path):
    """Tier 2 takes tier 1's outputs of the analyzers it would run alike and gives the result it gives from
    scratch; the weapon detector's only where tier 1 left no frame unsearched for want of someone in view."""
    tier1, tier2 = pipelines
    Image.fromarray(skdata.astronaut()).save(tmp_path / "person.jpg")
    Image.fromarray(still_room()).save(tmp_path / "room.jpg")
    person, room = load_media(tmp_path / "person.jpg"), load_media(tmp_path / "room.jpg")
    _, outputs = tier1.analyze_media_outputs(person)
    taken = tier2.alike(person, outputs, tier1.settings)
    assert set(taken) == set(outputs) and outputs["weapons"].data["frames_without_people_unsearched"] == 0
    scratch, reused = tier2.analyze_media(person), tier2.analyze_media(person, reuse=taken)
    assert reused.scores == scratch.scores and reused.outputs == scratch.outputs
    assert [d.model_dump() for d in reused.detections] == [d.model_dump() for d in scratch.detections]
    assert {"objects", "weapons"} <= set(scratch.timings_ms) and not {"objects", "weapons"} & set(reused.timings_ms)
    _, outputs = tier1.analyze_media_outputs(room)  # nobody in view: tier 2 searches the frame itself
    assert outputs["weapons"].data["frames_without_people_unsearched"] == 1
    assert set(tier2.alike(room, outputs, tier1.settings)) == set(outputs) - {"weapons"}


def test_stream_passwords_are_not_shown():
    assert redact_url("rtsp://admin:s3cret@10.0.0.5:554/live") == "rtsp://admin:***@10.0.0.5:554/live"
    assert redact_url("rtsp://10.0.0.5/live") == "rtsp://10.0.0.5/live"


def test_a_camera_from_the_settings_stores_its_incident_with_evidence(db, hall, pipelines, tmp_path):
    camera = CameraSettings(name="hall", source=str(hall), location="Main hall", realtime=False)
    settings = Settings(data_dir=tmp_path, live={"cameras": [camera]})
    service = LiveService(settings, db, pipelines=lambda: pipelines)
    loop = asyncio.new_event_loop()
    subscription = service.hub.subscribe(loop)
    service.start()
    monitor = service.monitor("hall")
    assert monitor.wait(120)
    service.stop()
    with db.session(write=False) as session:
        [(record, analysis)] = session.execute(
            select(IncidentRecord, Analysis).join(Analysis).where(IncidentRecord.category == "alarm")).all()
        assert record.camera == "hall" and analysis.camera == "hall" and analysis.source == str(hall)
        assert record.status == "open" and record.t_end_s >= 5.0
        live = record.data["live"]
        assert live["state"] == "ended" and live["incident_id"]
    # The evidence is in the artefact store, where every host reaches it; the row refers to it.
    stored = {kind: referenced_address(value) for kind, value in live["evidence"].items() if value}
    assert {kind: Path(address).suffix for kind, address in stored.items()} == {
        "snapshot": ".jpg", "clip": ".mp4", "audio": ".wav"}
    sizes = [service.artefacts.open(address).size_bytes for address in stored.values()]
    assert all(sizes) and live["evidence_bytes"] == sum(sizes)
    assert not [p for p in (tmp_path / "evidence").rglob("*") if p.is_file()]  # the working folder is left empty
    # The feed: camera started, the incident opened ... closed, its evidence, camera stopped; in order.
    loop.run_until_complete(asyncio.sleep(0))  # deliver what the camera threads handed to the loop
    messages = []
    while not subscription.queue.empty():
        messages.append(loop.run_until_complete(subscription.next()))
    kinds = [(m["type"], m.get("event") or m.get("state")) for m in messages]
    assert kinds[0] == ("camera", "started") and kinds[-1] == ("camera", "stopped")
    incident_events = [k for t, k in kinds if t == "incident"]
    assert incident_events[0] == "opened" and incident_events[-1] == "closed"
    opened = next(m for m in messages if m.get("event") == "opened")
    assert opened["incident"] == record.id and opened["location"] == "Main hall" and "snapshot" not in opened
    assert any(m["type"] == "evidence" and m["incident"] == record.id for m in messages)
    loop.close()


class _NoSoundStore(LocalArtefactStore):
    """A store that takes everything but sound: as when it fails part-way through an incident's evidence."""

    def put_file(self, path: Path, extension: str, *, sha256: str | None = None) -> str:
        if extension == ".wav":
            raise ArtefactStoreError("the storage is down")
        return super().put_file(path, extension, sha256=sha256)


def test_evidence_the_store_does_not_take_is_kept_in_its_folder_and_named_among_the_errors(db, hall, pipelines,
                                                                                          tmp_path):
    camera = CameraSettings(name="hall", source=str(hall), location="Main hall", realtime=False)
    settings = Settings(data_dir=tmp_path, live={"cameras": [camera]})
    service = LiveService(settings, db, pipelines=lambda: pipelines,
                          artefacts=_NoSoundStore(tmp_path / "artefacts"))
    service.start()
    assert service.monitor("hall").wait(120)
    service.stop()
    with db.session(write=False) as session:
        record = session.scalars(select(IncidentRecord).where(IncidentRecord.category == "alarm")).one()
        live = record.data["live"]
    # The sound failing alone: the clip after it is still stored, the sound stays where it was written.
    assert referenced_address(live["evidence"]["clip"]) and live["evidence"]["audio"] is None
    [error] = live["evidence_errors"]
    assert error.startswith("audio.wav not stored") and "the storage is down" in error
    kept = [p.name for p in (tmp_path / "evidence").rglob("*") if p.is_file()]
    assert kept == ["audio.wav"]


def test_cameras_are_added_started_stopped_and_removed(db, hall, pipelines, tmp_path):
    service = LiveService(Settings(data_dir=tmp_path), db, pipelines=lambda: pipelines)
    service.add_camera(CameraSettings(name="door", source=str(hall), enabled=False, loop=True))
    with pytest.raises(ConflictError):
        service.add_camera(CameraSettings(name="door", source=str(hall)))
    assert not service.status("door").running
    service.start_camera("door")
    deadline = time.monotonic() + 20
    while service.status("door").health["frames"] < FPS and time.monotonic() < deadline:
        time.sleep(0.1)
    status = service.status("door")
    assert status.running and status.health["state"] == "connected" and status.health["frames"] >= FPS
    service.stop_camera("door")
    assert not service.status("door").running
    service.remove_camera("door")
    with pytest.raises(NotFoundError):
        service.status("door")


def test_cameras_added_through_the_service_survive_a_restart_and_remember_being_stopped(db, hall, pipelines,
                                                                                       tmp_path):
    configured = CameraSettings(name="hall", source=str(hall), enabled=False)
    settings = Settings(data_dir=tmp_path, live={"cameras": [configured]})
    first = LiveService(settings, db, pipelines=lambda: pipelines)
    first.add_camera(CameraSettings(name="gate", source=str(hall), loop=True, location="Gate"))
    assert first.status("gate").running
    first.set_running("gate", False)
    with pytest.raises(ConflictError, match="settings file"):
        first.remove_camera("hall")
    first.stop()

    again = LiveService(settings, db, pipelines=lambda: pipelines)
    assert sorted(again.cameras) == ["gate", "hall"]
    gate = again.camera("gate")
    assert gate.location == "Gate" and gate.loop and not gate.enabled
    again.start()  # neither is enabled: nothing starts
    assert not again.monitors
    again.remove_camera("gate")
    again.stop()  # its retention thread and event bus, which would outlive the test's database
    assert sorted(LiveService(settings, db, pipelines=lambda: pipelines).cameras) == ["hall"]


def test_an_incident_the_database_cannot_take_still_reaches_the_feed(db, hall, pipelines, tmp_path):
    camera = CameraSettings(name="hall", source=str(hall), realtime=False)
    service = LiveService(Settings(data_dir=tmp_path, live={"cameras": [camera]}), db, pipelines=lambda: pipelines)
    service.db = Database(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no tables: every write fails
    service.start()
    assert service.monitor("hall").wait(120)
    service.stop()
    service.db.close()
    opened = [m for m in service.hub.recent if m["type"] == "incident" and m["event"] == "opened"]
    assert opened and opened[0]["category"] == "alarm" and opened[0]["incident"] is None


class _StopsWithAnother:
    """A camera's monitor whose stop waits until another camera's stop has begun (or fails, if told to)."""

    def __init__(self, both_stopping: threading.Barrier, *, fails: bool = False):
        self.both_stopping, self.fails, self.stopped = both_stopping, fails, False

    def stop(self):
        self.both_stopping.wait()  # stopped one after another, the first would wait here in vain
        if self.fails:
            raise RuntimeError("the camera's threads did not end")
        self.stopped = True

    def statistics(self):
        return {}


def test_a_server_stops_its_cameras_side_by_side_and_one_failing_stops_no_other(db, tmp_path):
    cameras = [CameraSettings(name=name, source="rtsp://127.0.0.1:1/none", enabled=False) for name in ("a", "b")]
    service = LiveService(Settings(data_dir=tmp_path, live={"cameras": cameras}), db,
                          pipelines=lambda: pytest.fail("no models needed"))
    both_stopping = threading.Barrier(2, timeout=30)
    service.monitors.update(a=_StopsWithAnother(both_stopping, fails=True), b=_StopsWithAnother(both_stopping))
    stopped = service.monitors["b"]
    service.stop()
    assert stopped.stopped and not both_stopping.broken and service.monitors == {}
