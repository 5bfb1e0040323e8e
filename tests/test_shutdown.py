"""Graceful shutdown of the long-running processes, as real processes on a real PostgreSQL (and Redis for Celery).

On SIGTERM a job worker (``watchkeeper worker`` on either queue, ``watchkeeper serve``'s own job threads) lets
a running job finish within ``server.job_shutdown_grace_s``; once the grace runs out it hands the job back to the
queue, so another worker completes it at once (the lease here is far longer than the test), and once. A camera
worker stops its cameras and frees their leases, so another worker takes them in about one renewal. Every
process exits 0 and logs each step. The jobs fetch their media from a loopback server that holds each request
until the test lets it go: that is how a job is kept running for as long as a test needs. The first two tests
check the hand-back itself in this process, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
import yaml
from loopback_http import LoopbackServer, Reply
from polling import free_port, wait_until
from sqlalchemy import func, select

from watchkeeper.api.submissions import ANALYZE_JOB
from watchkeeper.config import Settings
from watchkeeper.jobs.celery_app import CeleryJobQueue, configure
from watchkeeper.jobs.queue import DatabaseJobQueue
from watchkeeper.jobs.worker import JobContext, WorkerPool
from watchkeeper.samples import noise, siren, still_room, write_audio, write_video
from watchkeeper.store.db import Database
from watchkeeper.store.models import Analysis, CameraLease, Delivery, IncidentRecord, Job

EXE = str(Path(sys.executable).with_name("watchkeeper"))
REDIS_URL = "redis://127.0.0.1:6379/14"  # a database of its own, emptied per test
LONG_LEASE_S = 300  # far beyond any wait here: whatever moves, moved because it was handed back
GRACE_ENV = "WATCHKEEPER_SERVER__JOB_SHUTDOWN_GRACE_S"
HOOK = "http://127.0.0.1:9/hook"  # never answers: only the outbox row matters here
# Cheap analyzers only: a job is a siren (audio events), a camera a still room (motion).
OFF = ("objects", "weapons", "pose", "fire", "crowd", "speech", "text", "heads")


class Process:
    """A ``watchkeeper`` command with JSON logs in a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen([EXE, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self.pid = self.popen.pid

    def messages(self) -> list[str]:
        return [json.loads(line)["message"] for line in self.log.read_text(errors="replace").splitlines()
                if line.startswith("{")]

    def logged(self, message: str) -> bool:
        return message in self.messages()

    def terminate(self, number: signal.Signals = signal.SIGTERM) -> None:
        self.popen.send_signal(number)

    def exit_code(self, timeout_s: float = 90) -> int:
        return self.popen.wait(timeout_s)

    def assert_steps(self, *steps: str) -> None:
        """These messages were logged in this order (others may come between)."""
        remaining = iter(self.messages())
        missing = [step for step in steps if step not in remaining]  # each search goes on after the last match
        assert not missing, (missing, self.messages())


class Site:
    """A fresh PostgreSQL database, a settings file for it and a way to start processes on it."""

    def __init__(self, root: Path, url: str, settings: dict[str, Any]) -> None:
        self.root = root
        raw = {"database_url": url, "data_dir": str(root / "data"), "logging": {"format": "json"},
               "media": {"url_timeout_s": 120}, "analyzers": {name: {"enabled": False} for name in OFF}, **settings,
               "server": {"allowed_private_networks": ["127.0.0.1/32"], "job_lease_s": LONG_LEASE_S,
                          **settings.get("server", {})}}
        self.config = root / "settings.yaml"
        self.config.write_text(yaml.safe_dump(raw))
        self.settings = Settings.model_validate(raw)
        self.db = Database(url)
        self.db.upgrade()
        self.processes: list[Process] = []

    def start(self, *args: str, grace_s: float | None = None) -> Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
        if grace_s is not None:
            env[GRACE_ENV] = str(grace_s)
        process = Process(["--config", str(self.config), *args], self.root / f"{args[0]}-{len(self.processes)}.log",
                          env)
        self.processes.append(process)
        return process

    def job(self, job_id: str) -> Job:
        with self.db.session(write=False) as session:
            return session.get(Job, job_id)

    def count(self, model: Any, *where: Any) -> int:
        with self.db.session(write=False) as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

    def close(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait()
        self.db.close()


@pytest.fixture
def make_site(postgres, tmp_path) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(settings: dict[str, Any]) -> Site:
        sites.append(Site(tmp_path, postgres.create_database(), settings))
        return sites[-1]

    yield make
    for site in sites:
        site.close()


@pytest.fixture
def released() -> Iterator[threading.Event]:
    """Set it to answer the media requests, held until then."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def media(tmp_path, released) -> Iterator[LoopbackServer]:
    """``/siren.wav``, every request held until ``released``."""
    with LoopbackServer() as server:
        server.replies["/siren.wav"] = Reply(body=write_audio(tmp_path / "siren.wav", siren(2.0)).read_bytes(),
                                             headers={"Content-Type": "audio/wav"}, hold=released)
        yield server


def worker_pid(job: Job) -> int:
    """The process holding the job's lease: owners are ``host-pid/thread``."""
    return int(job.lease_owner.split("/")[0].rsplit("-", 1)[1])


def running_on(site: Site, job_id: str, process: Process) -> bool:
    job = site.job(job_id)
    return job.state == "running" and worker_pid(job) == process.pid


def test_a_released_job_is_claimable_at_once_without_an_attempt_spent_and_its_old_token_is_void(db):
    queue = DatabaseJobQueue(db, lease_s=LONG_LEASE_S, max_attempts=1)
    job_id = queue.submit("hold", {})
    first = queue.claim("stopping-worker")
    assert queue.heartbeat(job_id, first.token, 40)
    assert queue.release(job_id, first.token) and not queue.release(job_id, first.token)
    view = queue.get(job_id)
    assert (view.state, view.attempts, view.progress) == ("pending", 0, 0.0)
    second = queue.claim("next-worker")
    assert (second.id, second.attempts) == (job_id, 1)  # with max_attempts 1: the handed-back run was free
    assert not queue.complete(job_id, first.token, {}) and queue.complete(job_id, second.token, {"by": "next"})


def test_a_stopping_pool_hands_back_a_job_that_outlasts_the_grace_and_its_handler_stops_at_its_next_progress(db):
    queue = DatabaseJobQueue(db, lease_s=LONG_LEASE_S, max_attempts=1)
    started, ended = threading.Event(), threading.Event()

    def endless(ctx: JobContext) -> dict:
        started.set()
        try:
            while True:
                ctx.progress(10)
                time.sleep(0.02)
        finally:
            ended.set()

    pool = WorkerPool(queue, {"endless": endless}, threads=1, lease_s=LONG_LEASE_S, poll_s=0.05)
    pool.start()
    job_id = queue.submit("endless", {})
    assert started.wait(30)
    pool.stop(grace_s=0.2)
    assert ended.wait(30) and queue.get(job_id).state == "pending"
    assert queue.claim("next-worker").attempts == 1


@pytest.mark.parametrize("queue", ["local", "celery"])
def test_a_stopped_worker_hands_its_job_back_after_the_grace_and_the_next_one_finishes_it_within_its_own(
        queue, make_site, media, released):
    """The first worker (grace 1 s) is stopped mid-job: the job goes back and the second worker takes it at
    once; the second is stopped mid-job too, with a grace long enough: it finishes the job, once."""
    settings: dict[str, Any] = {"queue": queue}
    if queue == "celery":
        try:
            redis.Redis.from_url(REDIS_URL).flushdb()
        except redis.ConnectionError as exc:
            pytest.skip(f"no Redis on {REDIS_URL}: {exc}")
        settings["celery"] = {"broker_url": REDIS_URL}
    site = make_site(settings)
    jobs = (CeleryJobQueue(site.db, configure(site.settings), lease_s=LONG_LEASE_S, max_attempts=1)
            if queue == "celery" else DatabaseJobQueue(site.db, lease_s=LONG_LEASE_S, max_attempts=1))
    first = site.start("worker", grace_s=1)
    wait_until(lambda: first.logged("job workers started"), "the first worker", 60)
    job_id = jobs.submit(ANALYZE_JOB, {"source": f"{media.url}/siren.wav", "media_type": "audio"},
                         media_type="audio_url")
    wait_until(lambda: len(media.received) == 1 and running_on(site, job_id, first), "the first worker's run", 60)
    second = site.start("worker", grace_s=60)
    wait_until(lambda: second.logged("job workers started"), "the second worker", 60)

    first.terminate()
    wait_until(lambda: first.logged("job handed back to the queue"), "the job handed back", 30)
    wait_until(lambda: len(media.received) == 2 and running_on(site, job_id, second), "the second worker's run", 30)
    second.terminate()
    wait_until(lambda: second.logged("job workers stopping: no new claims"), "the second worker to stop claiming")
    assert site.job(job_id).state == "running"
    released.set()  # both runs go on; the first one's outcome counts for nothing

    assert second.exit_code() == 0 and first.exit_code() == 0
    done = site.job(job_id)
    assert (done.state, done.attempts, worker_pid(done)) == ("succeeded", 1, second.pid)  # a handed-back run is free
    assert site.count(Analysis, Analysis.job_id == job_id) == 1
    first.assert_steps("shutdown: SIGTERM received", "job workers stopping: no new claims",
                       "job workers' grace ran out: handing running jobs back", "job handed back to the queue",
                       "job workers stopped")
    second.assert_steps("shutdown: SIGTERM received", "job workers stopping: no new claims", "job run ended",
                        "job workers stopped")


def test_serve_stops_its_cameras_then_finishes_its_job_within_the_grace_and_keeps_its_webhook(make_site, media,
                                                                                             released, tmp_path):
    porch = write_video(tmp_path / "porch.mp4", (still_room(96, 72, seed=i % 3) for i in range(20)), fps=10)
    site = make_site({"server": {"job_workers": 1, "job_shutdown_grace_s": 60},
                      "live": {"cameras": [{"name": "porch", "source": str(porch), "loop": True}]}})
    port = free_port()
    server = site.start("serve", "--port", str(port))
    wait_until(lambda: server.logged("monitor started") and httpx.get(
        f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200, "the server and its camera", 120, 0.5)
    jobs = DatabaseJobQueue(site.db, lease_s=LONG_LEASE_S, max_attempts=1)
    job_id = jobs.submit(ANALYZE_JOB, {"source": f"{media.url}/siren.wav", "media_type": "audio"},
                         media_type="audio_url", callback_url=HOOK)
    wait_until(lambda: media.received and site.job(job_id).state == "running", "the job to start", 60)
    server.terminate()
    wait_until(lambda: server.logged("job workers stopping: no new claims"), "the cameras to stop", 60)
    released.set()
    assert server.exit_code() == 0
    assert site.job(job_id).state == "succeeded" and site.count(Analysis, Analysis.job_id == job_id) == 1
    # Its webhook was queued with the completion, and waits in the outbox for the next start.
    webhook = Delivery.dedupe_key == f"job:{job_id}:webhook"
    assert site.count(Delivery, webhook, Delivery.state == "pending") == 1
    server.assert_steps("shutdown: stopping cameras", "job workers stopping: no new claims", "job run ended",
                        "job workers stopped", "shutdown: stopping deliveries; unsent ones stay in the outbox",
                        "shutdown: done")


def test_a_stopped_camera_worker_closes_its_incident_keeps_its_alert_and_frees_its_cameras_at_once(make_site,
                                                                                                 tmp_path):
    """Two workers, one camera each; the hall's siren opens an incident (its gate would keep it open for a
    minute). Its worker is stopped: the incident is closed with its clip and its alert stays queued (no
    dispatcher runs in a camera worker: the server sends it), and the other worker takes the hall at its next
    renewal, long before the lease would have run out."""
    audio = np.concatenate([noise(1.0), siren(5.0), noise(6.0)])
    cameras = [{"name": "hall", "source": str(write_video(
                   tmp_path / "hall.mp4", (still_room(96, 72, seed=i % 3) for i in range(12 * 10)), fps=10,
                   audio=audio)), "loop": True, "gate": {"cooldown_s": 60}},
               {"name": "yard", "source": str(write_video(
                   tmp_path / "yard.mp4", (still_room(96, 72, seed=i % 3) for i in range(20)), fps=10)), "loop": True}]
    site = make_site({"live": {"cameras": cameras, "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0},
                               "leases": {"enabled": True, "lease_s": LONG_LEASE_S, "renew_s": 0.5}},
                      "alerts": {"groups": {"ops": {"webhooks": [HOOK]}},
                                 "routes": [{"name": "all", "groups": ["ops"]}]}})

    def watched_by() -> dict[str, int]:
        """Camera -> pid of the worker whose lease shows it watched (frames in the health it renews)."""
        with site.db.session(write=False) as session:
            return {lease.camera: int(lease.host.rsplit(":", 1)[1]) for lease in session.scalars(select(CameraLease))
                    if lease.owner is not None and (lease.health or {}).get("frames", 0) > 0}

    def open_hall_incident() -> IncidentRecord | None:
        """(An incident the hall's first watcher opened before handing the hall on is closed already.)"""
        with site.db.session(write=False) as session:
            found = session.scalars(select(IncidentRecord).where(IncidentRecord.camera == "hall")).all()
        return next((incident for incident in found if incident.data["live"]["state"] == "active"), None)

    workers = {p.pid: p for p in (site.start("camera-worker", "--data-dir", str(tmp_path / n)) for n in ("a", "b"))}
    wait_until(lambda: sorted(watched_by().values()) == sorted(workers), "one camera on each worker, watched", 120,
               0.2)
    opened = wait_until(open_hall_incident, "the siren's incident", 60, 0.2)
    stopped, other = workers[watched_by()["hall"]], workers[watched_by()["yard"]]
    stopped.terminate()
    assert stopped.exit_code() == 0
    wait_until(lambda: watched_by() == {"hall": other.pid, "yard": other.pid}, "both cameras on the other worker",
               30, 0.1)
    stopped.assert_steps("shutdown: SIGTERM received", "camera worker stopping its cameras", "stopped watching camera",
                         "camera leases given back", "shutdown: done")
    with site.db.session(write=False) as session:
        incident = session.get(IncidentRecord, opened.id)
        alerts = session.scalars(select(Delivery.state).where(
            Delivery.dedupe_key.startswith(f"incident:{opened.id}:"))).all()
    assert incident.data["live"]["state"] == "ended" and incident.data["live"]["evidence"]["clip"]
    assert alerts and set(alerts) == {"pending"}
    other.terminate(signal.SIGINT)  # Ctrl-C
    assert other.exit_code() == 0 and watched_by() == {}
    other.assert_steps("shutdown: SIGINT received", "camera leases given back", "shutdown: done")


HANGING_SHUTDOWN = """
import sys, time
from watchkeeper.cli.stopping import StopSignals
stop = StopSignals()
print("ready", flush=True)
print("stopping on", stop.wait(), flush=True)
time.sleep(60)  # a shutdown that hangs
"""


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_ends_a_hanging_shutdown_at_once(first):
    process = subprocess.Popen([sys.executable, "-c", HANGING_SHUTDOWN], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout.readline() == "ready\n"
        process.send_signal(first)
        assert process.stdout.readline() == f"stopping on {first.name}\n"  # the first is caught ...
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == -signal.SIGINT  # ... the second (Ctrl-C again) is not
        assert "a second SIGTERM or Ctrl-C ends the process at once" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


SIGNAL_ON_ANOTHER_THREAD = """
import signal, threading, time
from watchkeeper.cli.stopping import StopSignals
stop = StopSignals()
def elsewhere():
    time.sleep(0.3)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
threading.Thread(target=elsewhere).start()
print("stopping on", stop.wait(), flush=True)
"""


def test_a_signal_the_kernel_hands_to_another_thread_still_stops_the_process():
    """A process-wide SIGTERM may land on any thread (a camera's, OpenCV's); the main thread's wait must still
    see it. It did not: a camera worker once ignored a clean stop for 60 seconds."""
    process = subprocess.Popen([sys.executable, "-c", SIGNAL_ON_ANOTHER_THREAD], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.wait(10) == 0
        assert process.stdout.read() == "stopping on SIGTERM\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
