"""The dashboard in headless Chromium: sign in, watch a camera fed by a generated video, get its gunshots as a
toast and an emergency that must be acknowledged, and keep the theme and layout across browsers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apiserver import ApiServer, gunshot_gate_settings
from browser import screenshot, signed_in
from polling import wait_until


@pytest.fixture(scope="module")
def gate_server(start_server, media_root: Path, tmp_path_factory) -> Iterator[ApiServer]:
    """A server watching a gate where two pistol shots ring out 3 s into every 14 s."""
    settings = gunshot_gate_settings(media_root, tmp_path_factory.mktemp("cams"))
    server = start_server("web-live", settings)
    yield server
    server.stop()  # its cameras and workers would otherwise run on through the other modules' tests


def test_a_page_without_a_session_goes_to_sign_in_and_back(browser, gate_server):
    page = browser.new_page(base_url=gate_server.url)
    page.goto("/")
    assert page.url.endswith("/login?next=/")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text()
    screenshot(page, "login")
    page.close()
    assert page.context.browser is browser
    seed = browser.new_page(base_url=gate_server.url)
    seed.goto("/dashboard.html")  # seed 001's path
    assert "/login" in seed.url
    seed.close()


def test_the_live_view_streams_and_an_emergency_must_be_acknowledged(browser, gate_server):
    page = signed_in(browser, gate_server)
    tile = page.locator(".tile", has_text="gate")
    tile.wait_for()
    wait_until(lambda: page.evaluate(
        "() => { const i = document.querySelector('.tile img'); return i && i.naturalWidth > 0; }"),
        "the camera's picture in the page", 60)
    assert "connected" in tile.locator(".health").inner_text()
    page.locator(".toast").first.wait_for(timeout=60_000)
    dialog = page.locator("dialog#emergency")
    dialog.wait_for(state="visible", timeout=30_000)
    assert "North gate" in dialog.inner_text()
    screenshot(page, "live-emergency")
    page.keyboard.press("Escape")
    assert dialog.is_visible()  # an emergency is not dismissed, it is acknowledged
    acknowledged, seen = [], []
    while dialog.is_visible() and len(seen) < 4:  # one at a time: gunfire, and the blast a shot also sounds like
        seen.append(page.locator("#emergency-title").inner_text())
        acknowledged.append(page.locator("#emergency-open").get_attribute("href").rsplit("/", 1)[1])
        page.get_by_role("button", name="Acknowledge").click()
        page.wait_for_timeout(300)
    with gate_server.client(gate_server.admin_key) as admin:
        assert all(admin.get(f"/api/v1/incidents/{i}").json()["status"] == "acknowledged" for i in acknowledged)
    assert any("Gunfire" in title for title in seen)
    screenshot(page, "live")
    page.context.close()


def _saved(page):
    """Waits, around the action in its block, for the page to store the user's settings on the server."""
    return page.expect_response(lambda r: r.url.endswith("/auth/me/preferences") and r.request.method == "PATCH")


def test_the_theme_and_layout_are_remembered_for_the_user(browser, gate_server):
    page = signed_in(browser, gate_server)
    before = page.evaluate("document.documentElement.dataset.theme")
    with _saved(page) as theme_saved:
        page.get_by_role("button", name="Dark theme").click()
    after = page.evaluate("document.documentElement.dataset.theme")
    assert after != before and theme_saved.value.ok
    with _saved(page) as layout_saved:
        page.get_by_label("Columns").select_option("3")
    assert layout_saved.value.ok
    page.context.close()
    again = signed_in(browser, gate_server)  # a new browser profile: only the server remembers
    again.wait_for_function(f"document.documentElement.dataset.theme === '{after}'")
    again.wait_for_function("document.getElementById('grid-size').value === '3'")  # the theme was not lost
    screenshot(again, f"live-{after}")
    again.context.close()


def test_a_viewer_may_dismiss_an_emergency_but_not_acknowledge_it(browser, gate_server):
    gate_server.new_user_key("vera", "viewer")
    page = signed_in(browser, gate_server, name="vera", password="vera-password")
    dialog = page.locator("dialog#emergency")
    dialog.wait_for(state="visible", timeout=60_000)
    assert not page.get_by_role("button", name="Acknowledge").is_visible()
    while dialog.is_visible():
        page.get_by_role("button", name="Dismiss").click()
        page.wait_for_timeout(200)
    page.context.close()


@pytest.mark.parametrize("asked, kept", [("/incidents?page=2", "/incidents?page=2"), ("/\\evil.example", "/"),
                                         ("/\t/evil.example", "/"), ("//evil.example", "/"),
                                         ("https://evil.example/", "/")])
def test_sign_in_returns_only_to_a_page_of_this_server(asked, kept):
    from watchkeeper.web.pages import local_path

    assert local_path(asked) == kept
