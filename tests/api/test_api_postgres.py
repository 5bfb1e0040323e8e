"""The server on PostgreSQL (WATCHKEEPER_DATABASE_URL): the same API, the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from apiserver import ApiServer, base_settings, finished_job, upload


@pytest.fixture(scope="module")
def pg_server(start_server, media_root, postgres) -> Iterator[ApiServer]:
    url = postgres.create_database()
    server = start_server("pg", base_settings(media_root), env={"WATCHKEEPER_DATABASE_URL": url})
    yield server
    server.stop()  # its cameras and workers would otherwise run on through the other modules' tests


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


def test_concurrent_user_changes_end_in_one_409_not_in_no_admin_or_a_500(pg_server):
    ada_key = pg_server.new_user_key("ada", "admin")
    with pg_server.client(pg_server.admin_key) as first, pg_server.client(ada_key) as ada:
        first_id, ada_id = (c.get("/api/v1/auth/me").json()["user"]["id"] for c in (first, ada))
        # The only two admins demote each other at once: one must be refused (409 when both got past the
        # role check, 403 when one was demoted before its request was authenticated).
        with ThreadPoolExecutor(max_workers=2) as pool:
            demotions = list(pool.map(lambda c, target: c.patch(f"/api/v1/users/{target}", json={"role": "viewer"}),
                                      (first, ada), (ada_id, first_id)))
        assert sorted(r.status_code for r in demotions) in ([200, 403], [200, 409])
        winner, loser_id = (first, ada_id) if demotions[0].status_code == 200 else (ada, first_id)
        assert winner.patch(f"/api/v1/users/{loser_id}", json={"role": "admin"}).status_code == 200
        # Names differing only in case, created at once: one 201, one 409.
        with ThreadPoolExecutor(max_workers=2) as pool:
            created = list(pool.map(lambda name: first.post("/api/v1/users", json={
                "name": name, "password": "zed-password", "role": "viewer"}), ("Zed", "zed")))
        assert sorted(r.status_code for r in created) == [201, 409]
