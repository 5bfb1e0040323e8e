"""axe-core (the copy axe-playwright-python carries) on every main page, in both themes: no serious or
critical violations."""

from __future__ import annotations

import pytest
from apiserver import ADMIN_PASSWORD
from browser import signed_in

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright", reason="axe-playwright-python is missing")

PAGES = ["/", "/incidents", "/incidents/{incident}", "/analyze", "/stats", "/profile", "/admin"]


def problems(page) -> list[str]:
    results = axe_module.Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


@pytest.fixture(scope="module")
def incident(admin, media_root) -> int:
    analysed = admin.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"), "camera": "a11y"})
    assert analysed.status_code == 200, analysed.text
    return admin.get("/api/v1/incidents", params={"analysis_id": analysed.json()["analysis_id"]}).json()["items"][0]["id"]


def test_the_sign_in_page_is_accessible(browser, api_server):
    page = browser.new_page(base_url=api_server.url)
    page.goto("/login")
    assert problems(page) == []
    page.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_main_pages_are_accessible_in_both_themes(browser, api_server, incident, theme):
    page = signed_in(browser, api_server, name="admin", password=ADMIN_PASSWORD)
    found = {}
    for path in PAGES:
        page.goto(path.format(incident=incident))
        page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
        page.wait_for_load_state("networkidle")
        found[path] = problems(page)
    page.context.close()
    assert {path: issues for path, issues in found.items() if issues} == {}
