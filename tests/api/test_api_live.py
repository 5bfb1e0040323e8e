"""Cameras on a real server: the cameras API, the WebSocket event feed, the MJPEG view and incident evidence."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets
from apiserver import ADMIN_PASSWORD, ApiServer, assert_problem, base_settings
from polling import wait_until
from mediagen import noise, still_room, write_video

from watchkeeper.samples import siren

FPS = 15


@pytest.fixture(scope="module")
def live_server(start_server, media_root: Path, tmp_path_factory) -> Iterator[ApiServer]:
    """A server watching one looping file camera: a room where a siren sounds from 1 s to 6 s of every 12 s."""
    audio = np.concatenate([noise(1.0), siren(5.0), noise(6.0)])
    hall = write_video(tmp_path_factory.mktemp("cams") / "hall.mp4",
                       (still_room(seed=i % 3) for i in range(12 * FPS)), fps=FPS, audio=audio)
    settings = base_settings(media_root)
    settings["live"] = {
        "cameras": [{"name": "hall", "source": str(hall), "location": "Main hall", "loop": True}],
        "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0},
        "gate": {"cooldown_s": 3.0},
    }
    server = start_server("live", settings)
    yield server
    server.stop()  # its cameras and workers would otherwise run on through the other modules' tests


def test_configured_cameras_start_with_the_server_and_report_health(live_server):
    with live_server.client(live_server.admin_key) as client:
        hall = wait_until(lambda: (c := client.get("/api/v1/cameras/hall").json())["health"]["frames"] > FPS and c,
                          "the camera's first second")
        assert hall["running"] and hall["location"] == "Main hall" and hall["health"]["state"] == "connected"
        assert [c["name"] for c in client.get("/api/v1/cameras").json()] == ["hall"]
        assert_problem(client.get("/api/v1/cameras/nope"), 404)


def test_the_event_feed_carries_the_incident_and_its_evidence_is_served(live_server):
    ws_url = live_server.url.replace("http://", "ws://") + "/ws/events"

    async def first_incident_and_evidence() -> tuple[dict, dict]:
        async with websockets.connect(f"{ws_url}?api_key={live_server.admin_key}") as feed:
            opened = evidence = None
            while evidence is None:
                message = json.loads(await asyncio.wait_for(feed.recv(), timeout=60))
                if message["type"] == "incident" and message["event"] == "opened":
                    opened = opened or message
                if message["type"] == "evidence" and opened and message["incident"] == opened["incident"]:
                    evidence = message
            return opened, evidence

    opened, evidence = asyncio.run(first_incident_and_evidence())
    assert opened["category"] == "alarm" and opened["camera"] == "hall" and opened["location"] == "Main hall"
    assert evidence["evidence"] == ["audio", "clip", "snapshot"]
    with live_server.client(live_server.admin_key) as client:
        incident = client.get(f"/api/v1/incidents/{opened['incident']}").json()
        assert incident["camera"] == "hall" and incident["category"] == "alarm"
        snapshot = client.get(f"/api/v1/incidents/{opened['incident']}/evidence/snapshot")
        assert snapshot.status_code == 200 and snapshot.headers["content-type"] == "image/jpeg"
        clip = client.get(f"/api/v1/incidents/{opened['incident']}/evidence/clip")
        assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"
        assert_problem(client.get(f"/api/v1/incidents/{opened['incident']}/evidence/poster"), 422)
        # The report shows the snapshot and links the evidence.
        report = client.get(f"/api/v1/incidents/{opened['incident']}/report", params={"format": "json"}).json()
        part = report["incidents"][0]
        assert base64.b64decode(part["pictures"][0]["jpeg_base64"])[:2] == b"\xff\xd8"
        assert part["links"]["clip"] == f"/api/v1/incidents/{opened['incident']}/evidence/clip"
        assert part["camera"] == "hall" and report["subject"]["camera"] == "hall"


def test_the_feed_refuses_strangers_and_foreign_cookies(live_server):
    ws_url = live_server.url.replace("http://", "ws://") + "/ws/events"

    async def refused(url: str, **kwargs) -> int:
        try:
            async with websockets.connect(url, **kwargs) as feed:
                await feed.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code
        raise AssertionError("the feed was not refused")

    assert asyncio.run(refused(ws_url)) == 4401
    assert asyncio.run(refused(f"{ws_url}?api_key=wk_not_a_key")) == 4401
    with live_server.client() as client:
        assert client.post("/api/v1/auth/login", json={"name": "admin", "password": ADMIN_PASSWORD}).is_success
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    # A page on another site cannot use the operator's browser session to listen in.
    code = asyncio.run(refused(ws_url, additional_headers={"Cookie": cookie, "Origin": "https://evil.example"}))
    assert code == 4403


def test_the_mjpeg_view_streams_jpeg_frames(live_server):
    with httpx.stream("GET", f"{live_server.url}/cameras/hall/stream.mjpeg",
                      headers={"X-API-Key": live_server.admin_key}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
        received = b""
        for chunk in response.iter_bytes():
            received += chunk
            if received.count(b"\xff\xd9") >= 3:  # three whole JPEG pictures
                break
    assert received.startswith(b"--frame\r\nContent-Type: image/jpeg") and received.count(b"\xff\xd8") >= 3
    assert_problem(httpx.get(f"{live_server.url}/cameras/hall/stream.mjpeg"), 401)


def test_cameras_are_managed_through_the_api(live_server, media_root):
    room = write_video(media_root / "door-cam.mp4", (still_room(seed=i % 3) for i in range(2 * FPS)), fps=FPS)
    with live_server.client(live_server.admin_key) as admin:
        created = admin.post("/api/v1/cameras", json={"name": "door", "source": str(room), "loop": True,
                                                       "location": "Back door", "enabled": False})
        assert created.status_code == 201 and not created.json()["running"]
        assert_problem(admin.post("/api/v1/cameras", json={"name": "door", "source": str(room)}), 409)
        assert_problem(admin.delete("/api/v1/cameras/hall"), 409)  # the settings file's
        outside = admin.post("/api/v1/cameras", json={"name": "etc", "source": "/etc/passwd"})
        assert_problem(outside, 403, "unsafe_path")
        assert admin.post("/api/v1/cameras/door/start").json()["running"]
        assert not admin.post("/api/v1/cameras/door/stop").json()["running"]
        assert admin.delete("/api/v1/cameras/door").status_code == 204
        assert_problem(admin.get("/api/v1/cameras/door"), 404)
        actions = [e["action"] for e in admin.get("/api/v1/audit", params={"limit": 20}).json()["items"]]
        assert {"camera.create", "camera.start", "camera.stop", "camera.delete"} <= set(actions)
    operator = live_server.new_user_key("cam-operator", "operator")
    with live_server.client(operator) as client:
        assert_problem(client.post("/api/v1/cameras", json={"name": "x", "source": str(room)}), 403)


def test_seed_001_paths_serve_the_live_side(live_server):
    with live_server.client(live_server.admin_key) as client:
        event = wait_until(lambda: next((e for e in client.get("/anomaly_events").json()
                                         if e["category"] == "alarm" and e["video"]), None),
                           "a live alarm with its clip", timeout_s=60)
        assert event["camera"] == "hall" and event["frame"].startswith("/anomaly_frames/incident-")
        frame = client.get(event["frame"])
        assert frame.status_code == 200 and frame.content[:2] == b"\xff\xd8"
        assert client.get(event["video"]).content[4:8] == b"ftyp"
        assert_problem(client.get("/anomaly_frames/../../etc/passwd"), 404)
        assert_problem(client.get(f"/recorded_videos/incident-{event['id']}.jpg"), 404)
        with client.stream("GET", "/video_stream") as stream:
            assert stream.headers["content-type"].startswith("multipart/x-mixed-replace")
            assert next(stream.iter_bytes()).startswith(b"--frame")

    async def one_message() -> dict:
        url = live_server.url.replace("http://", "ws://") + f"/stream_video?api_key={live_server.admin_key}"
        async with websockets.connect(url) as stream:
            return json.loads(await asyncio.wait_for(stream.recv(), timeout=30))

    message = asyncio.run(one_message())
    assert message["camera"] == "hall" and base64.b64decode(message["frame"])[:2] == b"\xff\xd8"
    assert message["status"] in ("Normal", "Suspected Anomaly") and message["frame_count"] > 0
    assert {"pose_analysis", "audio_analysis", "scene_analysis"} <= set(message["tier1_components"])
