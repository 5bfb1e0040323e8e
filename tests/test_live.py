"""Live monitoring on real decoders: capture from files and an HTTP stream, reconnects, the monitor's incidents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from loopback_http import LoopbackServer, Reply
from mediagen import noise, still_room, write_audio, write_video
from polling import wait_until

from watchkeeper.config import LiveSettings, MediaSettings, Settings
from watchkeeper.domain import AUDIO_SAMPLE_RATE_HZ
from watchkeeper.live import IncidentEvent, Monitor
from watchkeeper.live.capture import CaptureLoop, camera_from_source, open_args
from watchkeeper.live.evidence import Evidence
from watchkeeper.media import load_media
from watchkeeper.samples import siren

EXE = str(Path(sys.executable).with_name("watchkeeper"))
FPS = 15
SIREN_FROM_S, SIREN_TO_S = 2.0, 10.0


@pytest.fixture(scope="module")
def room_with_siren(tmp_path_factory) -> Path:
    """16 s of a still room; a siren sounds from 2 s to 10 s, quiet noise otherwise."""
    audio = np.concatenate([noise(SIREN_FROM_S), siren(SIREN_TO_S - SIREN_FROM_S), noise(6.0)])
    path = tmp_path_factory.mktemp("live") / "hall.mp4"
    return write_video(path, (still_room(seed=i % 3) for i in range(16 * FPS)), fps=FPS, audio=audio)


@pytest.fixture(scope="module")
def short_stream(tmp_path_factory) -> bytes:
    """3 s as MPEG-TS, the way a camera streams over HTTP."""
    path = tmp_path_factory.mktemp("live") / "cam.ts"
    return write_video(path, (still_room(seed=i % 3) for i in range(3 * FPS)), fps=FPS,
                       audio=noise(3.0)).read_bytes()


def test_sources_open_by_kind():
    assert open_args("0", 5) == ("/dev/video0", {"format": "v4l2"})
    assert open_args("/dev/video2", 5) == ("/dev/video2", {"format": "v4l2"})
    url, kwargs = open_args("rtsp://cam.local/live", 5)
    assert kwargs["options"]["rtsp_transport"] == "tcp" and kwargs["timeout"] == 5
    assert camera_from_source("rtsp://cam.local/live/main?user=x").name == "main"
    assert camera_from_source("/srv/videos/front door.mp4").name == "front-door.mp4"


def test_a_file_is_captured_whole_with_its_sound(room_with_siren):
    capture = CaptureLoop(camera_from_source(room_with_siren, realtime=False), LiveSettings(buffer_s=60),
                          MediaSettings())
    capture.ring.pictures_s = 60  # keep every picture: this test reads the whole file back
    capture.start()
    capture.release(float("inf"))
    capture.join(60)
    health = capture.health
    assert health.state == "ended" and health.frames == 16 * FPS and health.has_audio
    assert (health.width, health.height) == (320, 240) and health.reconnects == 0
    media = capture.ring.window(3.0, 5.0)
    assert media.frames and 3.0 <= media.frames[0].t_s < 5.0
    assert len(media.audio) == 2 * AUDIO_SAMPLE_RATE_HZ
    # The siren is loud where it sounds and nowhere else.
    assert np.abs(media.audio).mean() > 3 * np.abs(capture.ring.window(12.0, 14.0).audio).mean()
    motion = media.motion
    assert len(motion.times_s) == pytest.approx(2 * MediaSettings().motion_fps, abs=1)
    assert np.all((motion.times_s >= 3.0) & (motion.times_s < 5.0)) and motion.gray.shape[2] == 160


def test_a_looping_file_plays_in_real_time_on_one_clock(tmp_path):
    clip = write_video(tmp_path / "one-second.mp4", (still_room(seed=i % 3) for i in range(FPS)), fps=FPS)
    capture = CaptureLoop(camera_from_source(clip, loop=True), LiveSettings(), MediaSettings()).start()
    time.sleep(2.6)
    capture.stop()
    health = capture.health
    # Three passes of a one-second file at its own pace: time goes on across the loops.
    assert 2.0 <= capture.ring.pictures_end_t <= 3.0
    assert 2.0 * FPS <= health.frames <= 3.0 * FPS and health.reconnects == 0


def test_a_stream_that_drops_is_reconnected_with_backoff(short_stream):
    live = LiveSettings(reconnect_initial_s=0.2, reconnect_max_s=0.4, connect_timeout_s=5)
    with LoopbackServer() as server:
        server.replies["/cam.ts"] = Reply(503, b"camera busy")
        capture = CaptureLoop(camera_from_source(f"{server.url}/cam.ts", "door"), live, MediaSettings()).start()
        try:
            wait_until(lambda: capture.health.reconnects >= 3, "retries while the stream is down")
            assert capture.health.state == "reconnecting" and capture.health.last_error
            assert capture.health.frames == 0
            # The stream comes up: frames flow. Each answer is a 3 s stream that ends, as when a camera drops.
            server.replies["/cam.ts"] = Reply(200, short_stream, {"Content-Type": "video/mp2t"})
            wait_until(lambda: capture.health.frames >= 6 * FPS, "frames after the stream ended and came back")
            # One request per attempt, and every attempt but the one in progress counts as a reconnect (read
            # the requests first: the loop counts an attempt's end before it sends the next request).
            attempts = len(server.received)
            assert attempts >= 5 and capture.health.reconnects >= attempts - 1 and capture.health.has_audio
        finally:
            capture.stop()
    assert capture.health.state == "stopped"


def test_a_siren_is_one_alarm_incident_that_opens_updates_and_closes(room_with_siren, tmp_path):
    events: list[IncidentEvent] = []
    written: list[Evidence] = []
    monitor = Monitor(camera_from_source(room_with_siren, "hall", realtime=False, location="Main hall"),
                      settings=Settings(), evidence_dir=tmp_path, reports_dir=tmp_path / "reports")
    monitor.on_incident(events.append)
    monitor.on_evidence(written.append)
    monitor.on_incident(lambda event: 1 / 0)  # a broken listener is logged; the others still hear
    monitor.start()
    assert monitor.wait(120)
    monitor.stop()
    alarm = [e for e in events if e.incident.category == "alarm"]
    kinds = [e.kind for e in alarm]
    assert kinds[0] == "opened" and kinds[-1] == "closed" and set(kinds[1:-1]) <= {"updated"}
    assert len({e.incident_id for e in alarm}) == 1 and all(e.camera == "hall" for e in alarm)
    opened, closed = alarm[0], alarm[-1]
    assert SIREN_FROM_S < opened.t <= SIREN_FROM_S + 3.0  # two supporting windows after it starts
    assert closed.incident.t_start_s <= SIREN_FROM_S + 1.0 and closed.incident.t_end_s >= SIREN_TO_S - 1.0
    stats = monitor.statistics()
    assert stats["by_category"]["alarm"] == 1 and stats["total_incidents"] == len({e.incident_id for e in events})
    assert stats["windows_analysed"] >= 14 and stats["windows_skipped"] == 0

    # Its evidence: the snapshot at once, then a clip and the sound from 5 s before it to 10 s after it opened.
    [evidence] = [w for w in written if w.incident_id == opened.incident_id]
    assert opened.evidence is evidence and not evidence.errors
    assert evidence.folder == tmp_path / "hall" / opened.incident_id
    assert Image.open(evidence.snapshot).size == (320, 240)
    t_from = max(0.0, opened.incident.t_start_s - 5.0)
    clip = load_media(evidence.clip)
    assert clip.info.has_audio and clip.duration_s == pytest.approx(opened.t + 10.0 - t_from, abs=0.5)
    sound = load_media(evidence.audio)
    assert sound.duration_s == pytest.approx(opened.t + 10.0 - t_from, abs=0.2)

    # Seed 004's files: the latest alerts, and the session's report.
    [alert] = [a for a in json.loads((tmp_path / "reports" / "anomaly_alerts.json").read_text())
               if a["id"] == opened.incident_id]
    assert alert["category"] == "Alarm or siren" and alert["category_id"] == "alarm" and alert["event"] == "closed"
    assert alert["severity"]["label"] == "MODERATE" and alert["severity"]["color"].startswith("#")
    assert alert["confidence"].endswith("%") and alert["location"] == "Main hall"
    assert set(alert["summary"]) == {"situation_overview", "severity_assessment", "hazard_analysis",
                                     "immediate_actions", "equipment_required", "de_escalation_strategy",
                                     "resolution_method"} and isinstance(alert["requires_immediate_action"], bool)
    assert "siren" in alert["summary"]["situation_overview"].lower() and alert["summary"]["immediate_actions"]
    report = json.loads(monitor.report_path.read_text())
    assert monitor.report_path.name.startswith("anomaly_reports_") and report["statistics"]["total_incidents"] >= 1
    assert report["category_breakdown"]["alarm"] == 1 and opened.incident_id in {i["id"] for i in report["incidents"]}
    page = monitor.report_path.with_suffix(".html").read_text()  # the same session as a readable report
    assert "Monitoring session: hall" in page and "Alarm or siren" in page and "data:image/jpeg;base64," in page


def test_the_monitor_command_writes_incident_events_as_json_lines(room_with_siren, tmp_path):
    events_file = tmp_path / "events.jsonl"
    proc = subprocess.run([EXE, "monitor", str(room_with_siren), "--name", "hall", "--no-realtime",
                           "--events-jsonl", str(events_file)], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "WATCHKEEPER_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in events_file.read_text().splitlines()]
    alarm = [line for line in lines if line["category"] == "alarm"]
    assert [line["event"] for line in alarm][0::len(alarm) - 1] == ["opened", "closed"]
    assert {"incident_id", "event", "category", "severity", "confidence", "camera", "t"} <= set(alarm[0])
    assert alarm[0]["camera"] == "hall" and "opened" in proc.stdout and "incident(s)" in proc.stdout
    assert alarm[0]["snapshot"].startswith(str(tmp_path / "data" / "evidence" / "hall"))
    assert "session report" in proc.stdout and list((tmp_path / "data" / "reports" / "hall").glob("anomaly_reports_*"))


def test_probing_finds_capture_devices_and_says_why_one_cannot_open(tmp_path):
    from watchkeeper.live.devices import microphones, video_devices

    pcm = tmp_path / "pcm"
    pcm.write_text("00-00: ALC892 Analog : ALC892 Analog : playback 1 : capture 1\n"
                   "00-01: ALC892 Digital : ALC892 Digital : playback 1\n"
                   "01-00: USB Audio : USB Audio : capture 1\n")
    assert [(m.source, m.name) for m in microphones(pcm)] == [("hw:0,0", "ALC892 Analog"), ("hw:1,0", "USB Audio")]
    assert microphones(tmp_path / "no-such-file") == []
    (tmp_path / "video0").write_bytes(b"")  # not a device: listed, with the reason it does not open
    [device] = video_devices(tmp_path, timeout_s=1)
    assert device.source == str(tmp_path / "video0") and device.detail.startswith("cannot open")
    proc = subprocess.run([EXE, "cameras", "probe"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip()


def test_a_separate_microphone_gives_a_silent_camera_its_sound(tmp_path):
    pictures = write_video(tmp_path / "silent.mp4", (still_room(seed=i % 3) for i in range(10 * FPS)), fps=FPS)
    sound = write_audio(tmp_path / "mic.wav", np.concatenate([noise(1.0), siren(5.0), noise(4.0)]))
    camera = camera_from_source(pictures, "desk", realtime=False, microphone=str(sound))
    events: list[IncidentEvent] = []
    monitor = Monitor(camera, settings=Settings(data_dir=tmp_path))
    monitor.on_incident(events.append)
    monitor.start()
    assert monitor.wait(120)
    monitor.stop()
    assert monitor.microphone.health.frames > 0 and monitor.microphone.health.has_audio
    assert [e.kind for e in events if e.incident.category == "alarm"][:1] == ["opened"]
    # The camera's own (absent) sound track is not needed: the windows carried the microphone's.
    assert monitor.last_result.media.has_audio


def test_a_person_in_a_cameras_restricted_zone_opens_an_intrusion(tmp_path):
    from skimage import data as skdata

    scene = still_room(640, 360)
    scene[104:360, 192:448] = skdata.astronaut()[::2, ::2]  # a person standing at the back
    clip = write_video(tmp_path / "door.mp4", (scene for _ in range(5 * FPS)), fps=FPS)
    lower_half = {"name": "behind the counter", "polygon": [(0, 0.5), (1, 0.5), (1, 1), (0, 1)], "restricted": True}
    events: list[IncidentEvent] = []
    for zones, expected in (([lower_half], ["opened", "closed"]), ([], [])):
        events.clear()
        # A small, softly encoded person: the detector is unsure (about 0.4), so this camera's gate is too.
        camera = camera_from_source(clip, "door", realtime=False, zones=zones, gate={"min_confidence": 0.4})
        monitor = Monitor(camera, settings=Settings(data_dir=tmp_path))
        monitor.on_incident(events.append)
        monitor.start()
        assert monitor.wait(120)
        monitor.stop()
        intrusion = [e for e in events if e.incident.category == "intrusion"]
        assert [e.kind for e in intrusion] == expected
    # Without the camera's zone the same picture is nobody's business (an empty list: no zones at all).


def test_a_missing_file_ends_the_camera_with_the_reason_instead_of_retrying(tmp_path):
    capture = CaptureLoop(camera_from_source(tmp_path / "gone.mp4", loop=True), LiveSettings(), MediaSettings())
    capture.start()
    capture.join(10)
    assert capture.finished and capture.health.state == "ended" and capture.health.reconnects == 0
    assert "No such file" in capture.health.last_error
    proc = subprocess.run([EXE, "monitor", str(tmp_path / "gone.mp4")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WATCHKEEPER_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 2 and "gone.mp4: No such file" in proc.stderr


def test_a_configured_provider_judges_only_the_candidate_windows(room_with_siren, tmp_path):
    recorded = json.loads((Path(__file__).parent / "data" / "provider_replies" / "llamacpp_chat.json").read_text())
    verdict = {"crime_detected": True, "category": "alarm", "severity": 2, "confidence": 0.9,
               "evidence_description": "A siren.", "location": "sound", "visual_score": 0.0, "audio_score": 0.9,
               "text_alignment_score": 0.0, "multimodal_agreement": 0.45, "reasoning_summary": "A siren sounds.",
               "threat_severity_index": 0.22}
    choice = {**recorded["choices"][0], "message": {"role": "assistant", "content": json.dumps(verdict)}}
    with LoopbackServer() as site:
        site.replies["/v1/chat/completions"] = Reply(200, json.dumps({**recorded, "choices": [choice]}).encode(),
                                                     {"Content-Type": "application/json"})
        settings = Settings(data_dir=tmp_path, default_provider="site", providers={
            "site": {"type": "openai_compatible", "base_url": f"{site.url}/v1", "model": "site-7b"}})
        events: list[IncidentEvent] = []
        monitor = Monitor(camera_from_source(room_with_siren, "hall", realtime=False), settings=settings)
        monitor.on_incident(events.append)
        monitor.start()
        assert monitor.wait(120)
        monitor.stop()
    stats = monitor.statistics()
    # Tier 2 (the provider) saw the siren's windows, not the quiet ones.
    assert 0 < len(site.received) == stats["windows_tier2"] < stats["windows_analysed"]
    opened = next(e for e in events if e.kind == "opened")
    assert opened.window.provider == "site" and opened.window.assessment.source == "site:openai/site-7b"
