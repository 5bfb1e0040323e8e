"""The Celery queue's own parts on the database alone: routing, announcements, and the sweep for stranded jobs.

Publishing is recorded instead of sent; tests/api/test_api_celery.py runs real workers on Redis.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from watchkeeper.config import Settings
from watchkeeper.jobs.celery_app import HEAVY_QUEUE, LIGHT_QUEUE, CeleryJobQueue, celery_config, queue_for


class RecordingCelery:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, float | None]] = []

    def send_task(self, name: str, *, args: list[Any], queue: str, countdown: float | None) -> None:
        self.sent.append((args[0], queue, countdown))


@pytest.fixture
def celery() -> RecordingCelery:
    return RecordingCelery()


def test_video_and_unknown_media_go_to_the_heavy_queue():
    assert [queue_for(t) for t in ("video", "video_file", "media_url", None)] == [HEAVY_QUEUE] * 4
    assert [queue_for(t) for t in ("audio", "audio_file", "image_url")] == [LIGHT_QUEUE] * 3


def test_settings_choose_the_queue_and_acknowledge_late():
    with pytest.raises(ValueError, match="celery.broker_url"):
        Settings(queue="celery")
    conf = celery_config(Settings(queue="celery", celery={"broker_url": "amqp://guest@rabbit//"}))
    assert conf["broker_url"] == "amqp://guest@rabbit//" and conf["task_acks_late"]
    assert conf["task_reject_on_worker_lost"] and conf["worker_prefetch_multiplier"] == 1
    assert [q.routing_key for q in conf["task_queues"]] == [HEAVY_QUEUE, LIGHT_QUEUE]


def test_submit_announces_and_a_retry_is_announced_for_when_it_is_due(db, celery):
    queue = CeleryJobQueue(db, celery, lease_s=30, max_attempts=3, retry_delay_s=2)
    job_id = queue.submit("analyze", {}, media_type="audio_file")
    assert celery.sent == [(job_id, LIGHT_QUEUE, None)]
    claimed = queue.claim("w", job_id=job_id)
    assert queue.fail(job_id, claimed.token, {"code": "boom"}, retry=True)
    assert celery.sent[-1] == (job_id, LIGHT_QUEUE, 2.0)
    assert queue.claim("w", job_id=job_id) is None  # not before its delay
    assert not queue.fail(job_id, "stale-token", {"code": "boom"}, retry=True) and len(celery.sent) == 2


def test_the_sweep_announces_lapsed_leases_and_jobs_left_waiting(db, celery):
    queue = CeleryJobQueue(db, celery, lease_s=0.2, max_attempts=3)
    running = queue.submit("analyze", {}, media_type="video_file")
    waiting = queue.submit("analyze", {}, media_type="image_file")
    assert queue.claim("w", job_id=running) is not None
    assert queue.announce_stranded() == 0  # a live lease, a job just submitted
    time.sleep(0.3)  # the worker is gone: its lease lapses; the other job waited a lease unclaimed
    celery.sent.clear()
    assert queue.announce_stranded() == 2
    assert sorted(celery.sent) == sorted([(running, HEAVY_QUEUE, None), (waiting, LIGHT_QUEUE, None)])
    assert queue.claim("w2", job_id=running).attempts == 2
