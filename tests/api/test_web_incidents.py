"""Incident review in headless Chromium against a server watching a gate where pistol shots ring out: the history
with its filters and pages, an incident with its snapshot, clip, sound, evidence and report, an operator assigning,
confirming and deleting the snapshot, and a viewer who sees it all but may change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apiserver import ApiServer, assert_problem, gunshot_gate_settings
from browser import screenshot, signed_in
from polling import wait_until


@pytest.fixture(scope="module")
def gate(start_server, media_root: Path, tmp_path_factory) -> Iterator[ApiServer]:
    """A server watching a gate where two pistol shots ring out 3 s into every 14 s."""
    settings = gunshot_gate_settings(media_root, tmp_path_factory.mktemp("cams"))
    server = start_server("web-incidents", settings)
    yield server
    server.stop()  # its cameras and workers would otherwise run on through the other modules' tests


@pytest.fixture(scope="module")
def admin(gate: ApiServer):
    with gate.client(gate.admin_key) as client:
        yield client


@pytest.fixture(scope="module")
def users(gate: ApiServer) -> dict[str, str]:
    """An operator (olga) and a viewer (vic), with their API keys; each signs in with '<name>-password'."""
    return {"olga": gate.new_user_key("olga", "operator"), "vic": gate.new_user_key("vic", "viewer")}


@pytest.fixture(scope="module")
def gunfire(admin: httpx.Client) -> int:
    """A gunfire incident of the gate with its snapshot, clip and sound written; the camera is stopped then, so no
    more emergencies pop up over the pages under test."""

    def complete() -> int | None:
        for incident in admin.get("/api/v1/incidents", params={"camera": "gate", "category": "shooting"}).json()[
                "items"]:
            detail = admin.get(f"/api/v1/incidents/{incident['id']}").json()
            if set(detail["evidence_files"]) == {"snapshot", "clip", "audio"}:
                return incident["id"]
        return None

    incident_id = wait_until(complete, "a gunfire incident with its evidence", 90, every_s=0.5)
    assert admin.post("/api/v1/cameras/gate/stop").status_code == 200
    return incident_id


def test_the_history_filters_pages_and_remembers_the_filters(browser, gate, admin, gunfire):
    page = signed_in(browser, gate)
    page.goto("/incidents")
    rows = page.locator("#rows tr")
    rows.first.wait_for()
    total = admin.get("/api/v1/incidents").json()["total"]
    assert rows.count() == total and f"{total} incident" in page.locator("#count").inner_text()
    page.get_by_label("Category").select_option(label="Gunfire")
    page.get_by_label("Severity at least").select_option("4")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/incidents?category=shooting&min_severity=4")
    shown = admin.get("/api/v1/incidents", params={"category": "shooting", "min_severity": 4}).json()["total"]
    page.wait_for_function(f"document.querySelectorAll('#rows tr').length === {shown}")
    assert set(page.locator("#rows td[data-label=Category]").all_inner_texts()) == {"Gunfire"}
    screenshot(page, "incidents")

    page.goto("/incidents")  # a plain visit opens with the filters used last
    page.wait_for_url("**/incidents?category=shooting&min_severity=4")
    assert page.get_by_label("Category").input_value() == "shooting"

    page.goto("/incidents?offset=1")  # a bookmarked second page; Previous goes back to the first
    page.wait_for_function(f"document.querySelectorAll('#rows tr').length === {total - 1}")
    assert page.get_by_label("Category").input_value() == "" and page.locator("#next").is_disabled()
    page.get_by_role("button", name="Previous").click()
    page.wait_for_function(f"document.querySelectorAll('#rows tr').length === {total}")
    assert "offset" not in page.url

    with page.expect_navigation():  # a row leads to its incident
        page.locator(f"#rows tr[data-id='{gunfire}'] a").click()
    assert page.url.endswith(f"/incidents/{gunfire}")

    page.set_viewport_size({"width": 380, "height": 800})
    page.goto("/incidents")
    page.locator("#rows tr").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 380
    screenshot(page, "incidents-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Clear").click()
    page.wait_for_url("**/incidents")
    page.wait_for_function(f"document.querySelectorAll('#rows tr').length === {total}")
    assert admin.post("/api/v1/cameras/gate/start").status_code == 200  # the next shots join the first page
    page.locator("#rows tr.fresh").first.wait_for(timeout=45_000)
    assert admin.post("/api/v1/cameras/gate/stop").status_code == 200
    assert page.locator("#rows tr").first.get_attribute("class") == "fresh"
    page.context.close()


def test_an_operator_reviews_assigns_confirms_and_deletes_the_snapshot(browser, gate, admin, users, gunfire):
    page = signed_in(browser, gate, name="olga", password="olga-password")
    page.goto(f"/incidents/{gunfire}")
    page.wait_for_function("() => { const i = document.getElementById('snapshot-image');"
                           " return i.complete && i.naturalWidth > 0; }")
    assert "North gate" in page.locator("#where").inner_text()
    assert "Gunfire" in page.locator("h1").inner_text() and page.locator("#severity").inner_text().startswith("5")
    page.wait_for_function("document.querySelector('#clip video').readyState >= 1", timeout=20_000)
    assert page.evaluate("document.querySelector('#clip video').play().then(() => true)")
    page.evaluate("document.querySelector('#clip video').pause()")
    assert page.evaluate("document.querySelector('#sound audio').src").endswith("/evidence/audio")
    evidence = page.locator("#evidence tbody tr")
    assert evidence.count() >= 1
    assert evidence.first.locator("td[data-label=Modality]").inner_text() in {"audio", "video", "text"}
    assert evidence.first.locator("td[data-label=Score]").inner_text().endswith("%")
    assert page.locator("#recording li").count() == evidence.count() + 2
    page.locator("#transcript-title").wait_for()

    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    html = page.request.get(page.get_by_role("link", name="Open report").get_attribute("href"))
    assert html.headers["content-type"].startswith("text/html") and html.headers["content-disposition"].startswith(
        "inline") and "script-src" not in html.headers["content-security-policy"]
    page.evaluate("window.scrollTo(0, 0)")  # the sticky bar stays at the top of the full-page picture
    screenshot(page, "incident")

    page.get_by_label("Assigned to").select_option(label="olga (operator)")
    page.get_by_role("button", name="Assign", exact=True).click()
    page.locator("#details", has_text="olga").wait_for()
    page.get_by_label("Note").fill("two shots, guard sent")
    page.get_by_role("button", name="Confirm").click()
    page.locator("#status", has_text="Confirmed").wait_for()
    assert page.get_by_role("button", name="Confirm").is_disabled()
    handling = page.locator("#handling")
    handling.locator("li", has_text="olga: Confirmed").wait_for()
    assert "olga assigned it to olga" in handling.inner_text() and "two shots, guard sent" in handling.inner_text()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete snapshot").click()
    page.locator("#no-media", has_text="No snapshot").wait_for()
    assert page.locator("#snapshot").is_hidden() and page.locator("#clip").is_visible()
    handling.locator("li", has_text="olga deleted the snapshot").wait_for()
    screenshot(page, "incident-after")
    page.context.close()

    detail = admin.get(f"/api/v1/incidents/{gunfire}").json()
    assert detail["status"] == "confirmed" and detail["assigned_to_name"] == "olga"
    assert detail["evidence_files"] == ["clip", "audio"]
    assert_problem(admin.get(f"/api/v1/incidents/{gunfire}/evidence/snapshot"), 404)
    assert_problem(admin.delete(f"/api/v1/incidents/{gunfire}/evidence/snapshot"), 404)
    audit = admin.get("/api/v1/audit", params={"action": "incident.evidence.delete",
                                               "target_id": str(gunfire)}).json()["items"]
    assert [(e["actor_name"], e["via"], e["details"]["kind"]) for e in audit] == [("olga", "session", "snapshot")]


def test_a_viewer_sees_the_incident_but_no_actions(browser, gate, admin, users, gunfire, media_root):
    page = signed_in(browser, gate, name="vic", password="vic-password")
    analysed = admin.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav")})
    assert analysed.status_code == 200, analysed.text
    alarm = admin.get("/api/v1/incidents", params={"analysis_id": analysed.json()["analysis_id"]}).json()["items"][0]
    page.goto(f"/incidents/{alarm['id']}")  # a file's incident: no evidence files, its evidence lines all the same
    page.locator("#no-media", has_text="analysed file").wait_for()
    assert page.locator("#evidence tbody tr").count() >= 1 and page.locator("#snapshot").is_hidden()
    page.goto(f"/incidents/{gunfire}")
    page.wait_for_function("document.getElementById('status').textContent !== ''")
    page.locator("#evidence tbody tr").first.wait_for()
    for name in ("Acknowledge", "Confirm", "Resolve", "False alarm", "Assign", "Delete snapshot"):
        assert page.get_by_role("button", name=name, exact=True).count() == 0
    assert page.locator("#assignee").count() == 0
    assert page.get_by_role("link", name="Download PDF").is_visible()
    page.get_by_role("button", name="Dark theme").click()
    page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    screenshot(page, "incident-viewer-dark")
    page.context.close()


def test_deleting_a_snapshot_needs_an_operator_and_a_live_incident(gate, users, gunfire):
    with gate.client(users["vic"]) as viewer, gate.client(users["olga"]) as operator:
        assert_problem(viewer.delete(f"/api/v1/incidents/{gunfire}/evidence/snapshot"), 403)
        assert_problem(viewer.get("/api/v1/users/assignable"), 403)
        assert_problem(operator.delete("/api/v1/incidents/999999/evidence/snapshot"), 404)
        assert operator.delete(f"/api/v1/incidents/{gunfire}/evidence/clip").status_code == 405  # the snapshot only
        assert viewer.get(f"/api/v1/incidents/{gunfire}/history").status_code == 200
