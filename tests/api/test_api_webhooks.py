"""Job webhooks to a real receiver on loopback: signed, retried, and sent once even across a crash."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from apiserver import WEBHOOK_SECRET, base_settings, finished_job
from polling import wait_until
from loopback_http import LoopbackServer, Reply

from mediagen import still_room, write_video
from watchkeeper.delivery.webhook import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify


def test_webhook_is_signed_carries_the_final_body_and_is_retried_after_a_500(operator, media_root):
    with LoopbackServer() as receiver:
        receiver.replies["/hook"] = [Reply(500), Reply(200)]
        queued = operator.post("/analyze/image/path", json={
            "image_path": str(media_root / "room.jpg"), "async": True, "callback_url": f"{receiver.url}/hook",
        }).json()
        done = finished_job(operator, queued["job_id"])
        first, second = receiver.wait_for(2)
    assert done["status"] == "success"
    for request in (first, second):
        assert request.method == "POST" and request.headers["content-type"].startswith("application/json")
        assert verify(WEBHOOK_SECRET, request.body, request.headers[SIGNATURE_HEADER.lower()])
        assert request.headers[EVENT_HEADER.lower()] == "job.finished"
    assert first.headers[DELIVERY_HEADER.lower()] == second.headers[DELIVERY_HEADER.lower()]
    assert json.loads(second.body) == done


def test_a_failed_job_sends_its_error_body(operator, media_root, api_server):
    (api_server.data_dir / "uploads" / "cut.jpg").write_bytes((media_root / "room.jpg").read_bytes()[:100])
    with LoopbackServer() as receiver:
        receiver.replies["/hook"] = Reply(204)
        queued = operator.post("/analyze/image/path", json={
            "image_path": "uploads/cut.jpg", "async": True, "callback_url": f"{receiver.url}/hook",
        }).json()
        (request,) = receiver.wait_for(1)
    body = json.loads(request.body)
    assert body["status"] == "error" and body["job_id"] == queued["job_id"] and body["error"]


def test_sigkill_mid_job_then_restart_finishes_the_job_once_and_sends_its_webhook_once(start_server, tmp_path):
    # A video long enough, at a 0.1 s frame interval, that the job is still running when the server dies.
    write_video(tmp_path / "long.mp4", [still_room(160, 120, seed=i) for i in range(200)], fps=10)
    server = start_server("crash", base_settings(tmp_path, allowed_private_networks=["127.0.0.1/32"], job_lease_s=3))
    database = server.data_dir / "watchkeeper.db"
    with LoopbackServer() as receiver:
        receiver.replies["/hook"] = Reply(200)
        with server.client(server.admin_key) as client:
            job_id = client.post("/analyze/video", json={
                "video_path": str(tmp_path / "long.mp4"), "frame_interval": 0.1, "callback_url": f"{receiver.url}/hook",
            }).json()["job_id"]
            wait_until(lambda: client.get(f"/api/v1/jobs/{job_id}").json()["state"] == "running", "the job to run")
        server.kill()
        assert _one(database, "SELECT state FROM jobs WHERE id = ?", job_id) == "running"

        server.start()
        with server.client(server.admin_key) as client:
            done = finished_job(client, job_id)
            job = client.get(f"/api/v1/jobs/{job_id}").json()
            analyses = client.get("/api/v1/analyses", params={"job_id": job_id}).json()
        key = f"job:{job_id}:webhook"
        wait_until(lambda: _one(database, "SELECT state FROM deliveries WHERE dedupe_key = ?", key) == "delivered",
                   "the webhook delivery")
        received = list(receiver.received)
    assert done["status"] == "success" and job["state"] == "succeeded" and job["attempts"] == 2
    assert analyses["total"] == 1
    assert _one(database, "SELECT count(*) FROM deliveries WHERE dedupe_key = ?", key) == 1
    assert len(received) == 1 and json.loads(received[0].body) == done


def _one(database: Path, query: str, *args: object) -> object:
    with sqlite3.connect(database) as connection:
        row = connection.execute(query, args).fetchone()
    return row[0] if row else None
