"""Headless Chromium (Debian's, driven by Playwright) for the dashboard's end-to-end tests.

``signed_in(browser, server)`` gives a page signed in as the server's admin through the real sign-in form;
``screenshot(page, name)`` keeps a PNG of the page under ``WK_SCREENSHOTS`` (default
``/tmp/watchkeeper-screenshots``) so a person can look at it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from apiserver import ADMIN_PASSWORD, ApiServer

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(os.environ.get("WK_SCREENSHOTS", "/tmp/watchkeeper-screenshots"))


# Per module: Playwright's synchronous API keeps an event loop running in this thread while it is open, which
# would stop later tests (of other modules) from running their own.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


def signed_in(browser, server: ApiServer, *, name: str = "admin", password: str = ADMIN_PASSWORD,
              width: int = 1280, height: int = 900):
    """A new browser context signed in through the sign-in page; returns its page."""
    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/")
    return page


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
