"""The job queue on Celery: a real server, real `watchkeeper worker` processes, Redis and PostgreSQL.

The server (``queue: celery``) runs no job threads of its own; the workers
take jobs from Redis and complete them in the shared PostgreSQL database.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from apiserver import EXE, ApiServer, base_settings, finished_job
from polling import wait_until
from sqlalchemy import func, select

from watchkeeper.store.db import Database
from watchkeeper.store.models import Analysis, Delivery, Job

REDIS_URL = "redis://127.0.0.1:6379/11"  # a database of its own, emptied per test
HOOK = "http://127.0.0.1:9/hook"  # never answers: only the outbox row matters here


@pytest.fixture
def broker() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.skip(f"no Redis on {REDIS_URL}: {exc}")
    return client


@pytest.fixture
def celery_site(postgres, broker, start_server, media_root) -> Iterator[tuple[ApiServer, Database, Callable[..., Any]]]:
    """A server on a fresh PostgreSQL database with queue: celery, and a way to start workers beside it."""
    url = postgres.create_database()
    settings = {**base_settings(media_root, job_lease_s=3, job_retry_delay_s=0.5,
                                allowed_private_networks=["127.0.0.1/32"]),
                "database_url": url, "queue": "celery", "celery": {"broker_url": REDIS_URL}}
    server = start_server("celery", settings)
    workers: list[subprocess.Popen[bytes]] = []

    def start_worker(*args: str, celery_command: bool = False) -> subprocess.Popen[bytes]:
        """`watchkeeper worker ARGS`, or with ``celery_command`` `celery -A ... worker ARGS` (the seed's form)."""
        log = (server.root / f"worker-{len(workers)}.log").open("ab")
        if celery_command:
            command = [str(Path(EXE).with_name("celery")), "-A", "watchkeeper.jobs.celery_app:app", "worker", *args]
        else:
            command = [EXE, "--config", str(server.config), "worker", "--data-dir", str(server.data_dir), *args]
        env = {**server.env, "WATCHKEEPER_CONFIG": str(server.config)}
        worker = subprocess.Popen(command, cwd=server.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        workers.append(worker)
        return worker

    db = Database(url)
    yield server, db, start_worker
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
    db.close()


def _jobs(db: Database) -> dict[str, Job]:
    with db.session(write=False) as session:
        return {job.id: job for job in session.scalars(select(Job))}


def _count(db: Database, model: Any, *where: Any) -> int:
    with db.session(write=False) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_three_workers_run_every_job_once_and_a_killed_workers_job_finishes_elsewhere(celery_site, media_root):
    server, db, start_worker = celery_site
    workers = {start_worker().pid: None for _ in range(3)}
    with server.client(server.admin_key) as client:
        job_ids = [client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"), "async": True,
                                                        "callback_url": HOOK}).json()["job_id"] for _ in range(6)]
        running = wait_until(lambda: [j for j in _jobs(db).values() if j.state == "running"], "a running job", 60,
                             every_s=0.05)[0]
        victim = int(running.lease_owner.split("/")[0].rsplit("-", 1)[1])  # "host-pid/thread"
        assert victim in workers
        os.kill(victim, signal.SIGKILL)
        assert _jobs(db)[running.id].state == "running"  # killed mid-job (a worker's first job loads its models)
        done = [finished_job(client, job_id, timeout_s=60) for job_id in job_ids]
    assert [d["status"] for d in done] == ["success"] * 6
    jobs = _jobs(db)
    for job_id in job_ids:
        assert jobs[job_id].state == "succeeded" and jobs[job_id].result["analysis_id"]
        assert _count(db, Analysis, Analysis.job_id == job_id) == 1
        assert _count(db, Delivery, Delivery.dedupe_key == f"job:{job_id}:webhook") == 1
        assert jobs[job_id].attempts == (2 if job_id == running.id else 1), (job_id, jobs[job_id].attempts)
    assert str(victim) not in jobs[running.id].lease_owner  # another worker completed it
    assert _count(db, Analysis) == 6


def test_video_jobs_go_to_the_heavy_queue_and_wait_for_a_heavy_worker_started_by_celerys_command(
        celery_site, broker, media_root):
    server, db, start_worker = celery_site
    with server.client(server.admin_key) as client:
        video = client.post("/analyze/video", json={"video_path": str(media_root / "room.mp4")}).json()["job_id"]
        audio = client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"),
                                                    "async": True}).json()["job_id"]
        assert broker.llen("watchkeeper.heavy") == 1 and broker.llen("watchkeeper.light") == 1
        start_worker("--queues", "watchkeeper.light")
        assert finished_job(client, audio, timeout_s=60)["status"] == "success"
        assert _jobs(db)[video].state == "pending"  # the server runs no jobs itself, the light worker takes none
        start_worker("--queues", "watchkeeper.heavy", "--concurrency", "1", celery_command=True)
        assert finished_job(client, video, timeout_s=60)["status"] == "success"
