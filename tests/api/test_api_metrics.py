"""Operations on a real server: GET /metrics (who may read it, and that jobs, alerts and cameras move it) and
JSON log lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apiserver import ApiServer, assert_problem, base_settings, finished_job
from mediagen import still_room, write_video
from polling import wait_until
from prometheus_client.parser import text_string_to_metric_families
from smtp_servers import Inbox, smtp_server

FPS = 15
REFUSED = "refused@example.com"
TEXT_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} [A-Z]+ ")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox(refuse={REFUSED: "550 5.1.1 no such mailbox"})
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture(scope="module")
def ops_server(start_server, media_root: Path, inbox, tmp_path_factory) -> Iterator[ApiServer]:
    """JSON logs, e-mail to a real SMTP server, and a looping file camera that is rarely analysed (the gauges
    only need its capture)."""
    _, port = inbox
    hall = write_video(tmp_path_factory.mktemp("cams") / "hall.mp4",
                       (still_room(160, 120, seed=i % 3) for i in range(4 * FPS)), fps=FPS)
    settings = base_settings(media_root)
    settings["notification"] = {"smtp_server": "127.0.0.1", "port": port, "sender_email": "alerts@example.com",
                                "default_recipients": ["security@example.com"], "notify_threshold": "low"}
    settings["live"] = {"cameras": [{"name": "hall", "source": str(hall), "loop": True, "analysis_interval_s": 600}]}
    settings["logging"] = {"format": "json"}
    settings["cache"] = {"enabled": False}  # every job runs its analyzers
    server = start_server("ops", settings)
    yield server
    server.stop()  # its camera and workers would otherwise run on through the other modules' tests


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_need_a_key_or_a_session_unless_public(ops_server, start_server, media_root):
    assert_problem(httpx.get(f"{ops_server.url}/metrics"), 401, "unauthenticated")
    assert_problem(httpx.get(f"{ops_server.url}/metrics", headers={"Authorization": "Bearer wrong"}), 401)
    viewer_key = ops_server.new_user_key("prometheus", "viewer")
    scraped = httpx.get(f"{ops_server.url}/metrics", headers={"Authorization": f"Bearer {viewer_key}"})
    assert scraped.status_code == 200 and "watchkeeper_jobs{" in scraped.text
    public = start_server("public-metrics", base_settings(media_root, job_workers=0, metrics_public=True))
    try:
        assert "process_cpu_seconds_total" in httpx.get(f"{public.url}/metrics").text
    finally:
        public.stop()


def test_a_job_moves_the_queue_and_latency_metrics(ops_server, media_root):
    with ops_server.client(ops_server.admin_key) as client:
        before = scrape(client)
        queued = client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"), "async": True})
        assert queued.status_code == 200, queued.text
        assert finished_job(client, queued.json()["job_id"])["status"] == "success"
        after = scrape(client)
    for name in ("watchkeeper_job_wait_seconds_count", "watchkeeper_job_run_seconds_count"):
        assert moved(before, after, name, kind="analyze") == 1, name
    assert moved(before, after, "watchkeeper_job_run_seconds_sum", kind="analyze") > 0
    assert moved(before, after, "watchkeeper_analyzer_seconds_count", analyzer="audio_events", media_type="audio") == 1
    assert moved(before, after, "watchkeeper_jobs", state="succeeded") == 1
    assert value(after, "watchkeeper_jobs", state="pending") == 0


def test_sent_and_failed_alerts_are_counted_per_channel(ops_server, inbox):
    handler, _ = inbox
    detection = {"crime_detected": True, "crime_type": "Vandalism", "potential_severity": "medium"}
    with ops_server.client(ops_server.admin_key) as client:
        before = scrape(client)
        assert client.post("/notify", json={"detection_result": detection}).json()["status"] == "sent"
        refused = client.post("/notify", json={"detection_result": detection, "recipients": [REFUSED]})
        assert_problem(refused, 502, "delivery_failed")
        after = scrape(client)
    assert handler.messages[-1].recipients == ["security@example.com"]
    for name in ("watchkeeper_alerts_sent_total", "watchkeeper_alerts_failed_total"):
        assert moved(before, after, name, channel="email") == 1, name


def test_a_started_camera_reports_its_frame_rate_and_lag(ops_server):
    with ops_server.client(ops_server.admin_key) as client:
        samples = wait_until(lambda: (s := scrape(client)) and value(s, "watchkeeper_camera_fps", camera="hall") > 0
                             and s, "the camera's measured frame rate", 60, every_s=0.5)
    assert value(samples, "watchkeeper_camera_connected", camera="hall") == 1
    assert 0 <= samples[("watchkeeper_camera_lag_seconds", frozenset({("camera", "hall")}))] < 30


def test_log_lines_are_json_objects_with_their_fields(ops_server, media_root):
    with ops_server.client(ops_server.admin_key) as client:
        job = client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"), "async": True}).json()
        finished_job(client, job["job_id"])
    lines = ops_server.log.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    ready = next(r for r in records if r["message"] == "watchkeeper API ready")
    assert ready["level"] == "INFO" and ready["logger"] == "watchkeeper.api.app" and ready["job_workers"] == 1
    assert ready["time"].endswith("+00:00")
    started = next(r for r in records if r["message"] == "job started" and r["job_id"] == job["job_id"])
    assert started["kind"] == "analyze" and started["attempt"] == 1
    # No record is logged as text (uvicorn's own included); other lines are libraries writing to stderr themselves.
    assert not [line for line in lines if TEXT_LOG_LINE.match(line)]
    assert any(r["logger"].startswith("uvicorn") for r in records)
