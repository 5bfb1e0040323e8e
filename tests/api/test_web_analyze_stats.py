"""The analyse and statistics pages in headless Chromium, and the API routes they brought: upload files through
the page and see the result drawn (boxes on frames, the sound events' timeline, incidents); the statistics page's
totals against /api/v1/stats, and its health panel; /api/v1/models, incidents by camera, an analysis's report."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from apiserver import ApiServer, base_settings, finished_job
from browser import screenshot, signed_in
from PIL import Image, ImageDraw, ImageFont

RESULT_TIMEOUT_MS = 120_000
RESULT_OR_ERROR = "!document.getElementById('result').hidden || document.getElementById('status').className === 'error'"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@pytest.fixture(scope="module")
def lab(start_server, media_root: Path) -> Iterator[ApiServer]:
    """A server of its own, so that its counts are only this module's; it reads text in pictures, which gives
    the analyse page boxes to draw."""
    settings = base_settings(media_root, rate_limit_per_minute=6000, rate_limit_burst=1000)
    settings["analyzers"] = {"ocr": {"enabled": True}}
    server = start_server("web-analyze", settings)
    yield server
    server.stop()  # its cameras and workers would otherwise run on through the other modules' tests


@pytest.fixture(scope="module")
def sign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A picture of a sign with large text, outside every media root (the page uploads it)."""
    if not FONT.is_file():
        pytest.skip(f"{FONT} is missing (Debian package fonts-dejavu-core)")
    image = Image.new("RGB", (320, 200), (235, 235, 235))
    ImageDraw.Draw(image).text((20, 70), "EXIT 12", fill=(10, 10, 10), font=ImageFont.truetype(str(FONT), 40))
    path = tmp_path_factory.mktemp("signs") / "sign.png"
    image.save(path)
    return path


def analyse_in_page(page, path: Path) -> None:
    page.goto("/analyze")
    page.get_by_label("Choose a file").set_input_files(path)
    page.wait_for_function(RESULT_OR_ERROR, timeout=RESULT_TIMEOUT_MS)
    assert page.locator("#result").is_visible(), page.locator("#status").inner_text()


def test_an_uploaded_image_is_analysed_and_its_boxes_drawn(browser, lab, sign):
    page = signed_in(browser, lab)
    analyse_in_page(page, sign)
    assert page.locator("#upload-progress").get_attribute("value") == "100"
    assert page.locator("#verdict").inner_text() == "No crime detected"
    canvas = page.locator("#frames canvas[data-drawn]")
    assert canvas.count() == 1 and int(canvas.get_attribute("data-boxes")) >= 1
    assert "ocr:text" in canvas.get_attribute("aria-label")
    # The picture itself is there (light grey), not an empty canvas.
    assert page.evaluate("() => document.querySelector('#frames canvas').getContext('2d')"
                         ".getImageData(5, 5, 1, 1).data[0]") > 200
    assert page.locator("#scores dd").count() == 5
    report = page.request.get(page.locator("#report-html").get_attribute("href"))
    assert report.status == 200 and report.headers["content-type"].startswith("text/html")
    assert report.headers["content-disposition"].startswith("inline")  # shown in a tab
    assert "default-src 'none'" in report.headers["content-security-policy"]
    screenshot(page, "analyze-image")
    page.context.close()


def test_an_uploaded_sound_shows_its_timeline_and_incident(browser, lab, media_root):
    page = signed_in(browser, lab, width=900)
    analyse_in_page(page, media_root / "siren.wav")
    assert page.locator("#verdict").inner_text() == "Crime detected: Alarm or siren"
    assert page.locator('#timeline rect[data-label="Siren"]').count() >= 1
    assert "Siren" in page.locator("#timeline table").inner_text()  # the chart's text alternative
    incident = page.locator("#incidents li").first
    assert "Alarm or siren" in incident.inner_text() and incident.locator(".sev").count() == 1
    assert incident.get_by_role("link").get_attribute("href").startswith("/incidents/")
    assert page.locator("#frames-card").is_hidden()
    screenshot(page, "analyze-audio")
    page.context.close()


def test_a_dropped_video_is_drawn_frame_by_frame(browser, lab, media_root):
    page = signed_in(browser, lab)
    page.goto("/analyze")
    dropped = page.evaluate_handle("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), files = new DataTransfer();
        files.items.add(new File([bytes], "room.mp4", {type: "video/mp4"}));
        return files;
    }""", base64.b64encode((media_root / "room.mp4").read_bytes()).decode())
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    page.wait_for_function(RESULT_OR_ERROR, timeout=RESULT_TIMEOUT_MS)
    assert page.locator("#result").is_visible(), page.locator("#status").inner_text()
    page.wait_for_function("document.querySelectorAll('#frames canvas[data-drawn]').length === 3")
    # Seeking the uploaded video drew its pictures: the room's wall, not black.
    assert page.evaluate("() => document.querySelector('#frames canvas').getContext('2d')"
                         ".getImageData(5, 5, 1, 1).data[0]") > 100
    page.context.close()


def test_viewers_may_not_analyse(browser, lab):
    lab.new_user_key("vivian", "viewer")
    page = signed_in(browser, lab, name="vivian", password="vivian-password")
    response = page.goto("/analyze")
    assert response.status == 403 and page.get_by_label("Choose a file").count() == 0
    page.context.close()


def test_models_are_listed_with_details_for_admins_only(lab):
    viewer_key = lab.new_user_key("val", "viewer")
    with lab.client(viewer_key) as viewer, lab.client(lab.admin_key) as admin:
        seen = viewer.get("/api/v1/models")
        full = admin.get("/api/v1/models")
    assert seen.status_code == 200 and full.status_code == 200
    models = {m["name"]: m for m in seen.json()["models"]}
    assert models["yamnet"]["installed"] is True and models["yamnet"]["optional"] is False
    assert all(m["source"] is None and m["status"] is None for m in models.values())
    assert {m["name"]: m["status"] for m in full.json()["models"]}["yamnet"] == "ok"


def test_incidents_are_counted_by_camera_and_an_analysis_has_a_report(lab):
    with lab.client(lab.admin_key) as admin:
        job = admin.post("/api/v1/analyses", json={"source": "siren.wav", "camera": "lobby"})
        assert job.status_code == 202, job.text
        analysis_id = finished_job(admin, job.json()["id"])["analysis_id"]
        stats = admin.get("/api/v1/stats").json()
        assert stats["incidents_by_camera"]["lobby"] == 1
        assert stats["incidents_by_camera"][""] >= 1  # the page's uploads
        assert sum(stats["incidents_by_camera"].values()) == stats["incidents"]
        report = admin.get(f"/api/v1/analyses/{analysis_id}/report", params={"format": "markdown"})
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/markdown")
        assert "Alarm or siren" in report.text and "lobby" in report.text
        assert f'analysis-{analysis_id}.md' in report.headers["content-disposition"]
        assert admin.get(f"/api/v1/analyses/{analysis_id}/report").content.startswith(b"%PDF")
        assert admin.get("/api/v1/analyses/no-such-analysis/report").status_code == 404


def test_the_statistics_page_shows_the_counts_and_the_health(browser, lab):
    page = signed_in(browser, lab)
    page.goto("/stats")
    page.wait_for_function("document.body.dataset.statsReady === 'true'")
    with lab.client(lab.admin_key) as admin:
        stats = admin.get("/api/v1/stats").json()  # everything here is from the last minutes
        models = admin.get("/api/v1/models").json()["models"]
    assert stats["incidents"] >= 2
    assert page.locator("#total-incidents").inner_text() == str(stats["incidents"])
    assert page.locator("#total-analyses").inner_text() == str(stats["analyses"])
    for chart in ("days", "category", "severity", "camera", "status"):
        assert page.locator(f"#chart-{chart}").get_attribute("data-total") == str(stats["incidents"]), chart
    assert "Alarm or siren" in page.locator("#chart-category table").inner_text()
    assert "lobby" in page.locator("#chart-camera table").inner_text()
    assert page.locator("#chart-severity rect").count() == len(stats["incidents_by_severity"])
    assert page.locator("#health-database").inner_text() == "sqlite"
    assert page.locator("#health-status").inner_text() == "healthy"
    assert page.locator("#models tbody tr").count() == len(models)
    assert "local" in page.locator("#providers").inner_text()
    screenshot(page, "stats")

    page.get_by_label("Time range").select_option("24h")
    page.wait_for_timeout(300)
    with lab.client(lab.admin_key) as admin:
        assert admin.get("/api/v1/auth/me/preferences").json()["stats_range"] == "24h"
    page.set_viewport_size({"width": 380, "height": 800})
    page.reload()
    page.wait_for_function("document.body.dataset.statsReady === 'true'")
    assert page.get_by_label("Time range").input_value() == "24h"  # kept for the user
    assert page.evaluate("document.documentElement.scrollWidth") <= 380
    screenshot(page, "stats-narrow")
    page.context.close()
