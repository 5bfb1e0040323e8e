"""Live cameras over real RTSP (GStreamer's RTSP server on loopback): reconnects and an incident's evidence."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mediagen import noise, still_room, write_video
from polling import free_port, wait_until

from watchkeeper.config import LiveSettings, MediaSettings, Settings
from watchkeeper.live import IncidentEvent, Monitor
from watchkeeper.live.capture import CaptureLoop, camera_from_source
from watchkeeper.live.evidence import Evidence
from watchkeeper.media import load_media
from watchkeeper.samples import siren

SERVER = Path(__file__).parent / "tools" / "rtsp_server.py"
FPS = 15


class RtspServer:
    def __init__(self, media: Path, port: int) -> None:
        self.media, self.port = media, port
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> RtspServer:
        self.proc = subprocess.Popen(["/usr/bin/python3", str(SERVER), "--port", str(self.port),
                                      "--file", str(self.media)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def rtsp(tmp_path) -> Iterator[callable]:
    servers: list[RtspServer] = []

    def serve(media: Path, port: int | None = None) -> RtspServer:
        server = RtspServer(media, port or free_port()).start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.kill()


def test_a_camera_whose_server_dies_reconnects_when_it_is_back(rtsp, tmp_path):
    room = write_video(tmp_path / "room.mp4", (still_room(seed=i % 3) for i in range(30 * FPS)), fps=FPS,
                       audio=noise(30.0))
    server = rtsp(room)
    live = LiveSettings(reconnect_initial_s=0.2, reconnect_max_s=0.5, connect_timeout_s=2)
    capture = CaptureLoop(camera_from_source(server.url, "yard"), live, MediaSettings()).start()
    try:
        wait_until(lambda: capture.health.frames >= 2 * FPS, "frames over RTSP")
        assert capture.health.state == "connected" and capture.health.has_audio
        server.kill()
        wait_until(lambda: capture.health.state == "reconnecting", "the drop to be noticed")
        frames_before = capture.health.frames
        time.sleep(1.0)  # down a while: several failed attempts
        assert capture.health.frames == frames_before
        rtsp(room, server.port)
        wait_until(lambda: capture.health.frames >= frames_before + 2 * FPS, "frames after the restart")
        health = capture.health
        assert health.state == "connected" and health.reconnects >= 2 and health.last_error is None
        # Camera time went on through the outage: the ring has a gap, not a jump back.
        assert capture.ring.pictures_end_t > 4.0
    finally:
        capture.stop()


def test_a_siren_on_an_rtsp_camera_is_one_incident_with_its_evidence_on_disk(rtsp, tmp_path):
    audio = np.concatenate([noise(1.0), siren(4.0), noise(7.0)])
    hall = write_video(tmp_path / "hall.mp4", (still_room(seed=i % 3) for i in range(12 * FPS)), fps=FPS,
                       audio=audio)
    server = rtsp(hall)
    settings = Settings(data_dir=tmp_path, live={"gate": {"cooldown_s": 2.0},
                                                 "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0}})
    monitor = Monitor(camera_from_source(server.url, "hall"), settings=settings, evidence_dir=tmp_path / "evidence")
    events: list[IncidentEvent] = []
    written: list[Evidence] = []
    monitor.on_incident(events.append)
    monitor.on_evidence(written.append)
    monitor.start()
    try:
        wait_until(lambda: any(e.kind == "closed" for e in events), "the incident to close")
    finally:
        monitor.stop()
    alarm = [e for e in events if e.incident.category == "alarm"]
    assert len({e.incident_id for e in alarm}) == 1 and [alarm[0].kind, alarm[-1].kind] == ["opened", "closed"]
    opened = alarm[0]
    # Seed 001's budget: the alert comes within 2 s of the window that proves it, and that within
    # two windows of the siren's start.
    assert (opened.at - monitor.started_at).total_seconds() < 1.0 + 4.0 + 2.0
    [evidence] = [w for w in written if w.incident_id == opened.incident_id]
    assert not evidence.errors
    files = {p.name for p in evidence.folder.iterdir()}
    assert files == {"snapshot.jpg", "clip.mp4", "audio.wav"}
    clip = load_media(evidence.clip)
    assert clip.info.media_type == "video" and clip.info.has_audio and clip.duration_s > 3.0
