"""The dashboard's account pages and the single-camera view in headless Chromium: registering and being
approved, the profile (sessions with revoke, changing the password), the admin page (users, API keys) and
what a viewer may not do; one camera's stream, its raw tier-1 JSON and its incidents as they happen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from apiserver import ApiServer, base_settings
from browser import screenshot, signed_in
from mediagen import noise, still_room, write_video
from polling import wait_until

from watchkeeper.samples import siren

FPS = 15
RITA_PASSWORD = "rita-password-1"
RITA_NEW_PASSWORD = "rita-password-2"


@pytest.fixture(scope="module")
def hall_server(start_server, media_root: Path, tmp_path_factory) -> Iterator[ApiServer]:
    """Self-registration on, and a hall camera where a siren sounds from 1 s to 6 s of every 12 s (an alarm:
    incidents, but no emergency dialog in the way of the other pages)."""
    audio = np.concatenate([noise(1.0), siren(5.0), noise(6.0)])
    hall = write_video(tmp_path_factory.mktemp("cams") / "hall.mp4",
                       (still_room(seed=i % 3) for i in range(12 * FPS)), fps=FPS, audio=audio)
    settings = base_settings(media_root, self_registration=True, rate_limit_per_minute=6000, rate_limit_burst=1000)
    settings["live"] = {"cameras": [{"name": "hall", "source": str(hall), "location": "Main hall", "loop": True}],
                        "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0}, "gate": {"cooldown_s": 3.0}}
    server = start_server("web-account", settings)
    yield server
    server.stop()  # its cameras and workers would otherwise run on through the other modules' tests


def _user_row(page, name: str):
    return page.locator(f"#users tbody tr[data-name='{name}']")


def test_a_registered_user_is_approved_on_the_admin_page_and_signs_in(browser, hall_server):
    anonymous = browser.new_context(base_url=hall_server.url, viewport={"width": 1280, "height": 900})
    page = anonymous.new_page()
    page.goto("/login")
    page.get_by_role("link", name="Ask for one").click()
    page.get_by_label("User name").fill("rita")
    page.get_by_label("E-mail").fill("rita@example.org")
    page.get_by_label("Password", exact=True).fill(RITA_PASSWORD)
    page.get_by_label("Password again").fill(RITA_PASSWORD)
    screenshot(page, "register")
    page.get_by_role("button", name="Ask for the account").click()
    assert "admin" in page.get_by_role("status").inner_text()
    anonymous.close()

    admin = signed_in(browser, hall_server)
    admin.goto("/admin")
    row = _user_row(admin, "rita")
    row.wait_for()
    assert "pending" in row.get_attribute("class")
    assert admin.locator("#users tbody tr").first.get_attribute("data-name") == "rita"  # waiting ones first
    screenshot(admin, "admin-pending")
    admin.get_by_label("Role of rita").select_option("operator")
    admin.get_by_role("button", name="Approve rita").click()
    row.locator(".state.active").wait_for()
    with hall_server.client(hall_server.admin_key) as client:
        rita = next(u for u in client.get("/api/v1/users").json()["items"] if u["name"] == "rita")
    assert (rita["role"], rita["state"], rita["email"]) == ("operator", "active", "rita@example.org")
    admin.context.close()

    page = signed_in(browser, hall_server, name="rita", password=RITA_PASSWORD)
    assert page.locator(".account .role").inner_text() == "operator"
    page.get_by_role("button", name="Sign out").click()  # so that the next test finds only its own sessions
    # Not wait_for_url: the live page's own refresh, refused, may send it to /login a second time, aborting the
    # first navigation; page.url is kept current only while Playwright runs (wait_for_timeout).
    wait_until(lambda: page.wait_for_timeout(100) or "/login" in page.url, "the sign-in page", 10)
    page.context.close()


def test_sessions_are_listed_revoked_and_a_new_password_ends_the_others(browser, hall_server):
    here = signed_in(browser, hall_server, name="rita", password=RITA_PASSWORD)
    there = signed_in(browser, hall_server, name="rita", password=RITA_PASSWORD)
    here.goto("/profile")
    assert "rita@example.org" in here.locator(".facts").inner_text()
    rows = here.locator("#sessions tbody tr")
    wait_until(lambda: rows.count() == 2, "both sessions listed", 10)
    assert here.locator("#sessions .current-tag").count() == 1
    assert "s" in here.locator("#sessions tr.current .uptime").inner_text()  # seed 002's uptime
    screenshot(here, "profile")
    here.get_by_role("button", name="Revoke").click()
    wait_until(lambda: rows.count() == 1, "the other session gone from the list", 10)
    there.goto("/profile")
    assert "/login" in there.url
    there.context.close()

    there = signed_in(browser, hall_server, name="rita", password=RITA_PASSWORD)
    here.get_by_label("Current password").fill("not the password")
    here.get_by_label("New password", exact=True).fill(RITA_NEW_PASSWORD)
    here.get_by_label("New password again").fill(RITA_NEW_PASSWORD)
    here.get_by_role("button", name="Change password").click()
    error = here.get_by_role("alert")
    error.wait_for()
    assert "wrong" in error.inner_text()
    here.get_by_label("Current password").fill(RITA_PASSWORD)
    here.get_by_role("button", name="Change password").click()
    here.locator("#password-done").wait_for()
    there.goto("/profile")
    assert "/login" in there.url  # changing the password signed the other session out
    there.context.close()
    here.reload()
    assert here.url.endswith("/profile")  # but not this one
    here.context.close()

    with httpx.Client(base_url=hall_server.url) as client:
        assert client.post("/api/v1/auth/login", json={"name": "rita", "password": RITA_PASSWORD}).status_code == 401
    signed_in(browser, hall_server, name="rita", password=RITA_NEW_PASSWORD).context.close()
    with hall_server.client(hall_server.admin_key) as client:
        audit = client.get("/api/v1/audit", params={"action": "auth.password_change"}).json()["items"]
    assert [(e["actor_name"], e["details"]) for e in audit] == [("rita", {"sessions_ended": 1})]


def test_an_api_key_made_on_the_admin_page_works_once_copied(browser, hall_server):
    admin = signed_in(browser, hall_server)
    admin.goto("/admin")
    _user_row(admin, "rita").wait_for()
    admin.get_by_label("New key's name").fill("rita's script")
    admin.get_by_label("Owner").select_option(label="rita (operator)")
    admin.get_by_role("button", name="Create key").click()
    panel = admin.locator("#new-key")
    panel.wait_for()
    key = admin.locator("#new-key-value").inner_text()
    admin.locator("#keys tbody tr", has_text="rita's script").wait_for()
    admin.get_by_role("button", name="Copy").click()
    admin.locator("#new-key-copied").wait_for()
    screenshot(admin, "admin")
    admin.get_by_role("button", name="Dismiss").click()
    assert panel.is_hidden() and admin.locator("#new-key-value").inner_text() == ""
    with httpx.Client(base_url=hall_server.url, headers={"X-API-Key": key}) as client:
        me = client.get("/api/v1/auth/me").json()
        # A key, even its user's own, cannot change the password.
        refused = client.post("/api/v1/auth/me/password",
                              json={"current_password": RITA_NEW_PASSWORD, "new_password": "by-a-script-1"})
    assert (me["user"]["name"], me["role"], me["via"]) == ("rita", "operator", "api_key")
    assert refused.status_code == 403
    admin.context.close()


def test_a_viewer_sees_but_cannot_change(browser, hall_server):
    with hall_server.client(hall_server.admin_key) as client:
        created = client.post("/api/v1/users", json={"name": "vic", "password": "vic-password", "role": "viewer"})
        assert created.status_code == 201, created.text
    page = signed_in(browser, hall_server, name="vic", password="vic-password")
    response = page.goto("/admin")
    assert response.status == 403 and page.get_by_role("heading", name="Not allowed").is_visible()
    assert page.locator("nav").get_by_role("link", name="Admin").count() == 0
    page.goto("/cameras/hall")
    page.locator("#health-facts dt").first.wait_for()
    assert page.locator("#toggle").count() == 0
    assert page.get_by_role("button", name="Stop").count() == 0
    assert page.get_by_role("button", name="Start").count() == 0
    page.context.close()


def test_the_camera_page_streams_shows_the_raw_analysis_and_the_incidents(browser, hall_server):
    page = signed_in(browser, hall_server)
    assert page.goto("/cameras/nope").status == 404
    assert page.get_by_role("heading", name="Not found").is_visible()
    page.goto("/cameras/hall")
    wait_until(lambda: page.evaluate("() => document.getElementById('stream').naturalWidth > 0"),
               "the camera's picture", 60)
    page.wait_for_function("document.getElementById('analysis').textContent.includes('\"status\"')", timeout=60_000)
    analysis = page.locator("#analysis").inner_text()
    assert '"tier1_components"' in analysis and '"frame"' not in analysis
    page.locator("#feed .feed-item").first.wait_for(timeout=60_000)
    first = page.locator("#feed .feed-item").first
    assert "Alarm" in first.inner_text() and first.locator("a.what").get_attribute("href").startswith("/incidents/")
    assert page.get_by_role("button", name="Stop").is_visible()  # the admin operates it
    screenshot(page, "camera")
    page.context.close()
