"""The server on PostgreSQL (WATCHKEEPER_DATABASE_URL): the same API, the same answers."""

from __future__ import annotations

import pytest
from apiserver import ApiServer, base_settings, finished_job, upload


@pytest.fixture(scope="module")
def pg_server(start_server, media_root, postgres) -> ApiServer:
    url = postgres.create_database()
    return start_server("pg", base_settings(media_root), env={"WATCHKEEPER_DATABASE_URL": url})


def test_seed_flow_and_v1_on_postgresql(pg_server, media_root):
    with pg_server.client(pg_server.admin_key) as client:
        assert client.get("/health").json()["database"] == "postgresql"
        path = upload(client, media_root / "room.jpg")["file_path"]
        assert client.post("/analyze/image/path", json={"image_path": path}).json()["image_path"] == path
        queued = client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"), "async": True,
                                                     "camera": "dock"}).json()
        done = finished_job(client, queued["job_id"])
        assert done["status"] == "success" and done["crime_detected"] is True

        incident = client.get("/api/v1/incidents", params={"camera": "dock", "category": "alarm"}).json()["items"][0]
        changed = client.patch(f"/api/v1/incidents/{incident['id']}", json={"status": "resolved", "note": "drill"})
        assert changed.json()["status"] == "resolved"
        stats = client.get("/api/v1/stats").json()
        assert stats["analyses"] == 2 and stats["incidents_by_status"].get("resolved", 0) >= 1
        assert sum(stats["incidents_by_day"].values()) == stats["incidents"]
        assert client.get("/api/v1/audit", params={"action": "incident.status"}).json()["total"] == 1
        # A NUL character is storable in SQLite but not in PostgreSQL text: a 4xx, not a 500.
        refused = client.get("/api/v1/incidents", params={"camera": "a\x00b"})
        assert refused.status_code == 400 and refused.json()["code"] == "bad_request"
