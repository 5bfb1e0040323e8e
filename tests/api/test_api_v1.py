"""The versioned API under /api/v1 against a real server: accounts, keys, analyses, incidents, jobs, stats, audit."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from apiserver import assert_problem, finished_job, upload
from pypdf import PdfReader

# -- users and registration --------------------------------------------------------------------------------


def test_admin_creates_lists_and_changes_users(admin):
    made = admin.post("/api/v1/users", json={"name": "uma", "password": "uma-password", "role": "viewer",
                                             "email": "uma@example.com"})
    assert made.status_code == 201 and made.json()["state"] == "active" and "password" not in made.text
    uma = made.json()
    assert_problem(admin.post("/api/v1/users", json={"name": "UMA", "password": "another-pw", "role": "viewer"}),
                   409, "conflict")
    assert admin.patch(f"/api/v1/users/{uma['id']}", json={"role": "operator"}).json()["role"] == "operator"
    listed = admin.get("/api/v1/users", params={"role": "operator"}).json()
    assert any(u["name"] == "uma" for u in listed["items"])
    assert admin.get(f"/api/v1/users/{uma['id']}").json()["email"] == "uma@example.com"
    assert_problem(admin.get("/api/v1/users/999999"), 404, "not_found")
    assert_problem(admin.post("/api/v1/users", json={"name": "shorty", "password": "short", "role": "viewer"}), 422)


def test_the_last_admin_cannot_be_disabled_or_demoted(admin):
    me = admin.get("/api/v1/auth/me").json()["user"]
    assert_problem(admin.post(f"/api/v1/users/{me['id']}/disable"), 409, "conflict")
    assert_problem(admin.patch(f"/api/v1/users/{me['id']}", json={"role": "viewer"}), 409, "conflict")


def test_self_registration_makes_a_pending_viewer_that_an_admin_approves(api_server, admin):
    with api_server.client() as anonymous:
        made = anonymous.post("/api/v1/auth/register", json={"name": "remy", "password": "remy-password"})
        assert made.status_code == 201 and made.json()["role"] == "viewer" and made.json()["state"] == "pending"
        assert_problem(anonymous.post("/api/v1/auth/login", json={"name": "remy", "password": "remy-password"}), 401)
        assert admin.post(f"/api/v1/users/{made.json()['id']}/approve").json()["state"] == "active"
        signed_in = anonymous.post("/api/v1/auth/login", json={"name": "remy", "password": "remy-password"})
        assert signed_in.status_code == 200 and signed_in.json()["user"]["role"] == "viewer"


def test_self_registration_is_off_by_default(strict_server):
    with strict_server.client() as anonymous:
        assert_problem(anonymous.post("/api/v1/auth/register", json={"name": "x", "password": "x-password"}), 403)


# -- keys --------------------------------------------------------------------------------------------------


def test_keys_are_shown_once_and_listed_by_prefix(operator):
    made = operator.post("/api/v1/keys", json={"name": "ci"}).json()
    assert made["key"].startswith("wk_") and made["key"].startswith(made["prefix"]) and made["role"] == "operator"
    listed = operator.get("/api/v1/keys").json()
    assert any(k["id"] == made["id"] for k in listed["items"])
    assert made["key"] not in str(listed) and "key" not in listed["items"][0]
    assert "key" not in operator.get(f"/api/v1/keys/{made['id']}").json()


def test_a_settings_change_keeps_the_other_settings_stored(viewer):
    """Two tabs, each with its own copy: each sends only the key it changed, and both changes stay."""
    assert viewer.put("/api/v1/auth/me/preferences", json={"theme": "light", "grid": 2}).status_code == 200
    assert viewer.patch("/api/v1/auth/me/preferences", json={"theme": "dark"}).json() == {"theme": "dark", "grid": 2}
    viewer.patch("/api/v1/auth/me/preferences", json={"grid": 3})
    assert viewer.get("/api/v1/auth/me/preferences").json() == {"theme": "dark", "grid": 3}
    too_big = {"filters": "x" * 20000}
    assert_problem(viewer.patch("/api/v1/auth/me/preferences", json=too_big), 400)
    assert viewer.get("/api/v1/auth/me/preferences").json() == {"theme": "dark", "grid": 3}  # nothing half-stored
    assert viewer.put("/api/v1/auth/me/preferences", json={}).json() == {}


def test_users_see_only_their_own_keys(operator, admin):
    admin_key_id = admin.get("/api/v1/auth/me").json()["key_id"]
    assert all(k["id"] != admin_key_id for k in operator.get("/api/v1/keys").json()["items"])
    assert_problem(operator.get(f"/api/v1/keys/{admin_key_id}"), 404)
    assert_problem(operator.delete(f"/api/v1/keys/{admin_key_id}"), 404)


# -- analyses and incidents --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def siren_analysis(operator, media_root) -> dict:
    """One analysis with an alarm incident, from camera 'gate-2'."""
    body = operator.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"), "camera": "gate-2"})
    assert body.status_code == 200, body.text
    return body.json()


def test_analyses_list_filters_and_detail(operator, siren_analysis):
    page = operator.get("/api/v1/analyses", params={"camera": "gate-2", "crime_detected": True}).json()
    assert page["total"] >= 1 and all(a["camera"] == "gate-2" and a["crime_detected"] for a in page["items"])
    detail = operator.get(f"/api/v1/analyses/{siren_analysis['analysis_id']}").json()
    assert detail["media_type"] == "audio" and detail["result"]["incidents"]
    assert_problem(operator.get("/api/v1/analyses/not-an-id"), 404)


def test_incidents_filter_page_and_change_status_with_an_audited_note(operator, admin, siren_analysis):
    analysis_id = siren_analysis["analysis_id"]
    page = operator.get("/api/v1/incidents", params={"analysis_id": analysis_id, "category": "alarm",
                                                     "status": "open", "camera": "gate-2"}).json()
    assert page["total"] >= 1
    incident = page["items"][0]
    assert incident["category"] == "alarm" and incident["status"] == "open" and incident["camera"] == "gate-2"
    severity = incident["severity"]
    assert operator.get("/api/v1/incidents", params={"analysis_id": analysis_id,
                                                     "min_severity": severity + 1}).json()["total"] == 0
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert operator.get("/api/v1/incidents", params={"analysis_id": analysis_id, "since": future}).json()["total"] == 0
    assert operator.get("/api/v1/incidents", params={"analysis_id": analysis_id, "until": future}).json()["total"] \
        == page["total"]

    changed = operator.patch(f"/api/v1/incidents/{incident['id']}", json={"status": "acknowledged",
                                                                           "note": "guard on the way"}).json()
    assert changed["status"] == "acknowledged" and changed["status_note"] == "guard on the way"
    assert changed["status_changed_by"] == operator.get("/api/v1/auth/me").json()["user"]["id"]
    detail = operator.get(f"/api/v1/incidents/{incident['id']}").json()
    assert detail["status"] == detail["data"]["status"] == "acknowledged" and detail["data"]["evidence"]
    # The analysis's stored result holds each incident with its status too, in the order of the incident rows.
    rows = operator.get("/api/v1/incidents", params={"analysis_id": analysis_id}).json()["items"]
    stored = operator.get(f"/api/v1/analyses/{analysis_id}").json()["result"]["incidents"]
    assert [i["status"] for i in stored] == [r["status"] for r in sorted(rows, key=lambda r: r["id"])]
    assert [i["category"] for i in stored] == [r["category"] for r in sorted(rows, key=lambda r: r["id"])]
    assert_problem(operator.patch(f"/api/v1/incidents/{incident['id']}", json={"status": "closed"}), 422)

    audit = admin.get("/api/v1/audit", params={"action": "incident.status", "target_id": str(incident["id"])}).json()
    entry = audit["items"][0]
    assert entry["actor_name"] == "oscar" and entry["via"] == "api_key" and entry["ip"] == "127.0.0.1"
    assert entry["details"] == {"from": "open", "to": "acknowledged", "note": "guard on the way"}


def test_an_incident_is_assigned_to_an_active_operator_or_admin_and_audited(operator, viewer, admin,
                                                                             siren_analysis):
    incident_id = operator.get("/api/v1/incidents", params={"analysis_id": siren_analysis["analysis_id"]}).json()[
        "items"][0]["id"]
    oscar = operator.get("/api/v1/auth/me").json()["user"]
    vera = viewer.get("/api/v1/auth/me").json()["user"]
    assignable = operator.get("/api/v1/users/assignable").json()
    assert {"id": oscar["id"], "name": "oscar", "role": "operator"} in assignable
    assert all(u["role"] in ("operator", "admin") for u in assignable) and vera["id"] not in {u["id"] for u in assignable}
    assert_problem(viewer.get("/api/v1/users/assignable"), 403)

    changed = operator.patch(f"/api/v1/incidents/{incident_id}", json={"assigned_to": oscar["id"], "note": "mine"})
    assert changed.status_code == 200 and changed.json()["assigned_to"] == oscar["id"]
    detail = viewer.get(f"/api/v1/incidents/{incident_id}").json()
    assert detail["assigned_to_name"] == "oscar" and detail["evidence_files"] == []  # a file's incident: no files
    assert_problem(operator.patch(f"/api/v1/incidents/{incident_id}", json={"assigned_to": vera["id"]}), 400)
    assert_problem(operator.patch(f"/api/v1/incidents/{incident_id}", json={"assigned_to": 999999}), 400)
    assert_problem(operator.patch(f"/api/v1/incidents/{incident_id}", json={"note": "nothing to change"}), 422)
    assert_problem(viewer.patch(f"/api/v1/incidents/{incident_id}", json={"assigned_to": None}), 403)
    assert operator.patch(f"/api/v1/incidents/{incident_id}", json={"assigned_to": None}).json()["assigned_to"] is None

    audit = admin.get("/api/v1/audit", params={"action": "incident.assign", "target_id": str(incident_id)}).json()
    assert [e["details"] for e in reversed(audit["items"])] == [
        {"from": None, "to": oscar["id"], "name": "oscar", "note": "mine"},
        {"from": oscar["id"], "to": None, "name": None, "note": None}]
    history = viewer.get(f"/api/v1/incidents/{incident_id}/history").json()  # what the audit log says of it
    assert [e["action"] for e in history if e["action"] == "incident.assign"] == ["incident.assign"] * 2
    assert_problem(viewer.get("/api/v1/incidents/999999/history"), 404)


def test_an_incidents_report_comes_in_every_format(operator, api_server, siren_analysis):
    incident = operator.get("/api/v1/incidents", params={"analysis_id": siren_analysis["analysis_id"]}).json()
    incident_id = incident["items"][0]["id"]
    pdf = operator.get(f"/api/v1/incidents/{incident_id}/report")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and f"incident-{incident_id}.pdf" in pdf.headers["content-disposition"]
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages).split())
    assert "Alarm or siren" in text and "Hazard analysis" in text and "gate-2" in text
    report = operator.get(f"/api/v1/incidents/{incident_id}/report", params={"format": "json"}).json()
    assert report["kind"] == "incident" and [p["incident_id"] for p in report["incidents"]] == [str(incident_id)]
    html = operator.get(f"/api/v1/incidents/{incident_id}/report", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html") and "<h1" in html.text
    assert "Resolution method" in operator.get(f"/api/v1/incidents/{incident_id}/report",
                                               params={"format": "markdown"}).text
    assert_problem(operator.get(f"/api/v1/incidents/{incident_id}/report", params={"format": "docx"}), 422)
    assert_problem(operator.get("/api/v1/incidents/999999/report"), 404)
    assert_problem(httpx.get(f"{api_server.url}/api/v1/incidents/{incident_id}/report"), 401)


def test_stats_count_by_category_status_and_day(operator, siren_analysis):
    stats = operator.get("/api/v1/stats").json()
    assert stats["analyses"] >= 1 and stats["incidents"] >= 1 and stats["incidents_by_category"]["alarm"] >= 1
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert stats["incidents_by_day"].get(today, 0) >= 1
    assert sum(stats["incidents_by_status"].values()) == stats["incidents"]
    later = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert operator.get("/api/v1/stats", params={"since": later}).json()["incidents"] == 0


def test_audit_log_pages_and_filters(admin):
    page = admin.get("/api/v1/audit", params={"limit": 2, "offset": 0}).json()
    assert len(page["items"]) == 2 and page["total"] > 2 and page["limit"] == 2
    second = admin.get("/api/v1/audit", params={"limit": 2, "offset": 2}).json()
    assert {e["id"] for e in page["items"]}.isdisjoint(e["id"] for e in second["items"])
    created = admin.get("/api/v1/audit", params={"action": "user.create", "actor": "cli:" + __import__(
        "getpass").getuser()}).json()
    assert created["total"] >= 1 and created["items"][0]["via"] == "cli"
    assert_problem(admin.get("/api/v1/audit", params={"limit": 0}), 422)


def test_media_lists_uploads(operator, media_root):
    made = upload(operator, media_root / "noise.png")
    page = operator.get("/api/v1/media", params={"media_type": "image"}).json()
    row = next(m for m in page["items"] if m["filename"] == made["filename"])
    assert row["file_path"] == made["file_path"] and row["sha256"] == made["sha256"]
    assert operator.get(f"/api/v1/media/{row['id']}").json()["filename"] == made["filename"]


# -- jobs --------------------------------------------------------------------------------------------------


def test_v1_submission_runs_as_a_job(operator, media_root):
    job = operator.post("/api/v1/analyses", json={"source": str(media_root / "noise.png"), "camera": "lobby"})
    assert job.status_code == 202 and job.json()["state"] in ("pending", "running", "succeeded")
    done = finished_job(operator, job.json()["id"])
    assert done["status"] == "success"
    view = operator.get(f"/api/v1/jobs/{job.json()['id']}").json()
    assert view["state"] == "succeeded" and view["progress"] == 100.0 and view["analysis_id"]
    assert operator.get(f"/api/v1/analyses/{view['analysis_id']}").json()["camera"] == "lobby"
    listed = operator.get("/api/v1/jobs", params={"state": "succeeded"}).json()
    assert any(j["id"] == view["id"] for j in listed["items"])


def test_a_pending_job_can_be_cancelled_once(strict_server, media_root):
    # The strict server runs no job workers, so its jobs stay pending.
    with strict_server.client(strict_server.admin_key) as client:
        queued = client.post("/analyze/image/path", json={"image_path": str(media_root / "room.jpg"),
                                                          "async": True}).json()
        assert client.get(f"/jobs/{queued['job_id']}").json() == {"status": "pending", "job_id": queued["job_id"],
                                                                   "progress": 0.0}
        cancelled = client.post(f"/api/v1/jobs/{queued['job_id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        assert_problem(client.post(f"/api/v1/jobs/{queued['job_id']}/cancel"), 409, "conflict")
        legacy = client.get(f"/jobs/{queued['job_id']}").json()
        assert legacy["status"] == "error" and legacy["code"] == "cancelled"
        assert_problem(client.post("/api/v1/jobs/nope/cancel"), 404)


def test_a_jobs_callback_url_and_server_path_are_shown_to_admins_and_its_creator_only(strict_server, media_root):
    # A public literal address passes the URL policy; the strict server runs no workers, so nothing is sent.
    callback = "https://93.184.216.34/hook?token=webhook-token-123"
    keys = {name: strict_server.new_user_key(name, role)
            for name, role in (("carla", "operator"), ("otis", "operator"), ("vince", "viewer"))}
    with (strict_server.client(keys["carla"]) as creator, strict_server.client(keys["otis"]) as other,
          strict_server.client(keys["vince"]) as viewer, strict_server.client(strict_server.admin_key) as admin):
        made = creator.post("/api/v1/analyses", json={"source": "room.jpg", "callback_url": callback})
        assert made.status_code == 202, made.text
        job_id = made.json()["id"]
        for client in (creator, admin):
            job = client.get(f"/api/v1/jobs/{job_id}").json()
            assert job["callback_url"] == callback
            assert job["params"]["source"] == str((media_root / "room.jpg").resolve())
        for client in (other, viewer):
            one = client.get(f"/api/v1/jobs/{job_id}")
            listed = next(j for j in client.get("/api/v1/jobs").json()["items"] if j["id"] == job_id)
            for job in (one.json(), listed):
                assert job["callback_url"] is None and "source" not in job["params"]
                assert job["params"]["client_source"] == "room.jpg" and job["state"] == "pending"
            assert "webhook-token-123" not in one.text and str(media_root) not in one.text
        cancelled = other.post(f"/api/v1/jobs/{job_id}/cancel")
        assert cancelled.json()["state"] == "cancelled" and "webhook-token-123" not in cancelled.text
        audit = admin.get("/api/v1/audit", params={"action": "job.cancel", "target_id": job_id}).json()
        assert [(e["actor_name"], e["details"]) for e in audit["items"]] == [("otis", {"state_was": "pending"})]


def test_openapi_document_and_docs_are_served(api_server):
    document = httpx.get(f"{api_server.url}/openapi.json").json()
    assert document["info"]["title"] == "Watchkeeper"
    assert {"/health", "/analyze/video", "/api/v1/incidents/{incident_id}"} <= set(document["paths"])
    schemes = document["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} >= {"http", "apiKey"}
    # The docs pages load their scripts from this server, never from a CDN (sites may be offline).
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{api_server.url}{page}").text
        scripts = re.findall(r'<script src="([^"]+)"', html)
        assert scripts and all(src.startswith("/") for src in scripts), (page, scripts)
        for src in scripts:
            asset = httpx.get(f"{api_server.url}{src}")
            assert asset.status_code == 200 and len(asset.content) > 100_000, src
