"""Continuous recording into MP4 segments, and retention by age, total size and free disk space (of recordings and of
incidents' evidence, in folders and in the artefact store)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from mediagen import noise, still_room, write_video
from sqlalchemy import select, update

from watchkeeper.artefacts import LocalArtefactStore, as_reference
from watchkeeper.config import EvidenceSettings, LiveSettings, MediaSettings, RecordingSettings
from watchkeeper.domain import AnalysisResult, Incident, MediaInfo
from watchkeeper.live.capture import CaptureLoop, camera_from_source
from watchkeeper.live.recording import GB, Retention, SegmentRecorder, StoredEvidence
from watchkeeper.media import load_media
from watchkeeper.store.live import open_live_incident
from watchkeeper.store.models import IncidentRecord

FPS = 15


@pytest.fixture(scope="module")
def four_seconds(tmp_path_factory) -> Path:
    """4 s with a keyframe every 0.5 s, so segments can be cut every second."""
    path = tmp_path_factory.mktemp("rec") / "cam.mp4"
    import av
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.options = {"g": str(FPS // 2)}
        for i in range(4 * FPS):
            frame = av.VideoFrame.from_ndarray(still_room(seed=i % 3), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def test_a_camera_is_recorded_into_playable_segments(four_seconds, tmp_path):
    capture = CaptureLoop(camera_from_source(four_seconds, "door"), LiveSettings(), MediaSettings())
    capture.recorder = SegmentRecorder(tmp_path / "door", RecordingSettings(enabled=True, segment_s=1.0))
    capture.start()
    capture.join(30)
    segments = sorted((tmp_path / "door").iterdir())
    assert capture.health.state == "ended" and capture.health.recording.startswith("on, ")
    assert 3 <= len(segments) <= 5 and all(p.suffix == ".mp4" for p in segments)  # no .part left behind
    durations = [load_media(p).duration_s for p in segments]
    assert sum(durations) == pytest.approx(4.0, abs=0.6) and max(durations) <= 1.6


def test_a_recorded_stream_keeps_its_sound(tmp_path):
    clip = write_video(tmp_path / "talk.mp4", (still_room(seed=i % 3) for i in range(2 * FPS)), fps=FPS,
                       audio=noise(2.0))
    capture = CaptureLoop(camera_from_source(clip, "hall"), LiveSettings(), MediaSettings())
    capture.recorder = SegmentRecorder(tmp_path / "hall", RecordingSettings(enabled=True))
    capture.start()
    capture.join(30)
    [segment] = (tmp_path / "hall").iterdir()
    media = load_media(segment)
    assert media.info.has_audio and media.duration_s == pytest.approx(2.0, abs=0.3)


def write_segment(folder: Path, name: str, size: int, age_h: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"\0" * size)
    stamp = time.time() - age_h * 3600
    os.utime(path, (stamp, stamp))
    return path


def test_retention_deletes_by_age_then_oldest_first_to_fit_the_budget(tmp_path):
    old = write_segment(tmp_path / "a", "old.mp4", 1000, age_h=80)
    a1 = write_segment(tmp_path / "a", "a1.mp4", 4000, age_h=3)
    b1 = write_segment(tmp_path / "b", "b1.mp4", 4000, age_h=2)
    a2 = write_segment(tmp_path / "a", "a2.mp4", 4000, age_h=1)
    partial = write_segment(tmp_path / "b", "b2.mp4.part", 4000, age_h=100)  # being written: not touched
    retention = Retention(tmp_path, RecordingSettings(max_age_h=72, max_total_gb=9000 / GB, min_free_gb=0))
    retention.enforce()
    assert retention.deleted == [old, a1]  # too old, then the oldest of any camera until 8000 bytes fit
    assert b1.exists() and a2.exists() and partial.exists()


def test_evidence_goes_by_age_then_oldest_incident_first_whole_folders_at_a_time(tmp_path):
    evidence = tmp_path / "evidence"
    stale = write_segment(evidence / "hall" / "incident-a", "clip.mp4", 100, age_h=24 * 100).parent
    older = write_segment(evidence / "hall" / "incident-b", "clip.mp4", 3000, age_h=5).parent
    write_segment(older, "snapshot.jpg", 500, age_h=5)
    newer = write_segment(evidence / "door" / "incident-c", "clip.mp4", 3000, age_h=1).parent
    retention = Retention(tmp_path / "recordings", RecordingSettings(),
                          evidence=(evidence, EvidenceSettings(max_age_days=90, max_total_gb=4000 / GB)))
    retention.enforce()
    assert retention.deleted == [stale, older] and not stale.exists() and not older.exists()
    assert (newer / "clip.mp4").exists()


def live_incident(session, store, camera: str, evidence: dict[str, str], size: int, age_h: float) -> int:
    """A live incident's row whose evidence (kind -> address) is in the artefact store."""
    incident = Incident(category="alarm", category_name="Alarm", severity=3, severity_label="High", confidence=0.9,
                        threshold=0.5, t_start_s=0.0, t_end_s=1.0, modalities=["audio"], modality_agreement=1,
                        evidence=[], summary="a siren", requires_immediate_action=False, threat_severity_index=0.5)
    window = AnalysisResult(media=MediaInfo(media_type="video", source=camera, format="mp4", sha256="0" * 64,
                                            size_bytes=0), scores={}, incidents=[], detections=[],
                            crime_detected=True, crime_type="Alarm", confidence="high", evidence_description="")
    row_id = open_live_incident(session, window, incident, camera=camera, source=camera, live={
        "evidence": {kind: as_reference(address) for kind, address in evidence.items()}, "evidence_bytes": size},
        artefacts=store)
    created = datetime.now(timezone.utc) - timedelta(hours=age_h)
    session.execute(update(IncidentRecord).where(IncidentRecord.id == row_id).values(created_at=created))
    return row_id


def test_evidence_in_the_artefact_store_goes_by_age_then_oldest_incident_first(db, tmp_path):
    store = LocalArtefactStore(tmp_path / "artefacts")
    snapshot = store.put_bytes(b"\xff\xd8\xff shared", "jpg")  # the same picture in two incidents: one object
    clips = [store.put_bytes(f"clip {n}".encode(), "mp4") for n in range(3)]
    with db.session() as session:
        stale = live_incident(session, store, "hall", {"clip": clips[0], "snapshot": snapshot}, 100, age_h=24 * 100)
        older = live_incident(session, store, "hall", {"clip": clips[1]}, 3000, age_h=5)
        newer = live_incident(session, store, "door", {"clip": clips[2], "snapshot": snapshot}, 3000, age_h=1)
        live_incident(session, store, "door", {}, 0, age_h=24 * 200)  # nothing kept: nothing to do
    retention = Retention(tmp_path / "recordings", RecordingSettings(),
                          evidence=(tmp_path / "evidence", EvidenceSettings(max_age_days=90, max_total_gb=4000 / GB)),
                          stored_evidence=StoredEvidence(db, store))
    retention.enforce()
    assert retention.deleted == [stale, older]
    assert [store.exists(clip) for clip in clips] == [False, False, True] and store.exists(snapshot)
    with db.session(write=False) as session:
        live = {row.id: row.data["live"] for row in session.scalars(select(IncidentRecord))}
    assert live[stale]["evidence"] == {"clip": None, "snapshot": None} and live[stale]["evidence_bytes"] == 0
    assert live[newer]["evidence"]["clip"] == as_reference(clips[2])
    retention.enforce()  # what went is not counted again
    assert retention.deleted == [stale, older]


class DatabaseAway:
    """Stored evidence whose database (or artefact store) is unreachable."""

    def units(self):
        raise ConnectionError("database unreachable")

    def delete(self, unit):
        raise ConnectionError("database unreachable")


def test_recordings_are_still_pruned_and_checked_while_stored_evidence_cannot_be_reached(tmp_path, caplog):
    old = write_segment(tmp_path / "door", "old.mp4", 1000, age_h=80)
    recent = write_segment(tmp_path / "door", "recent.mp4", 1000, age_h=1)
    retention = Retention(tmp_path, RecordingSettings(max_age_h=72, min_free_gb=1.0), free_bytes=lambda _: GB // 2,
                          evidence=(tmp_path / "evidence", EvidenceSettings()), stored_evidence=DatabaseAway())
    recorder = SegmentRecorder(tmp_path / "door", RecordingSettings())
    retention.recorders.append(recorder)
    retention.enforce()
    assert not old.exists() and not recent.exists()  # by age, then for free space
    assert recorder.paused_reason and "min_free_gb" in recorder.paused_reason
    assert "database unreachable" in caplog.text


def test_a_disk_short_of_room_pauses_recording_with_a_reason_until_there_is_room(tmp_path):
    free = {"bytes": 10 * GB}
    retention = Retention(tmp_path, RecordingSettings(min_free_gb=1.0), free_bytes=lambda _: free["bytes"])
    recorder = SegmentRecorder(tmp_path / "door", RecordingSettings())
    retention.recorders.append(recorder)
    only = write_segment(tmp_path / "door", "only.mp4", 1000, age_h=1)
    free["bytes"] = GB // 2
    retention.enforce()
    assert not only.exists()  # deleting recordings comes first ...
    assert recorder.paused_reason and "min_free_gb" in recorder.paused_reason  # ... then recording stops
    free["bytes"] = 5 * GB
    retention.enforce()
    assert recorder.paused_reason is None


@pytest.mark.parametrize("privacy", [False, True])
def test_monitors_record_when_the_settings_say_so_and_never_in_privacy_mode(four_seconds, tmp_path, privacy):
    from watchkeeper.config import Settings
    from watchkeeper.live import Monitor

    settings = Settings(data_dir=tmp_path, live={"recording": {"enabled": True, "segment_s": 2}})
    monitor = Monitor(camera_from_source(four_seconds, "door", privacy_mode=privacy), settings=settings)
    monitor.start()
    assert monitor.wait(60)
    monitor.stop()
    recorded = list((tmp_path / "recordings" / "door").glob("*.mp4"))
    if privacy:
        assert not recorded and monitor.health.recording is None
    else:
        assert recorded and monitor.health.recording.startswith("on, ")
