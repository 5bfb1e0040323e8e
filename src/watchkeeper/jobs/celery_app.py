"""The job queue on Celery: the broker says "job X is ready", the database stays the queue.

A message carries a job id and nothing else. The worker that receives it
claims that job with the database queue's own claim (a fresh lease token),
runs it with the worker pool's heartbeats, and completes it only while its
token is current: a message delivered twice runs the job once at a time and
completes it once, and a message for a job that is done, or leased by a live
worker, is a no-op. Messages are acknowledged after the run
(``task_acks_late``) and given back when the process running them dies
(``task_reject_on_worker_lost``). A worker killed outright leaves its message
unacknowledged until the broker's visibility timeout, so each worker also
sweeps the database every half lease and announces again the jobs no message
will reach soon (a lapsed lease, a retry that came due, a failed publish).

SIGTERM (or a first Ctrl-C) starts Celery's warm shutdown: no more messages,
and Celery waits for the running tasks. Ours give their jobs
``server.job_shutdown_grace_s`` to finish, then hand them back to the
database queue and announce them again, so another worker runs them at once;
the handler stops at its next progress report and its task returns (and is
acknowledged). A cold shutdown (SIGQUIT, a second Ctrl-C) hands them back at
once. This is the threads pool's behaviour (``watchkeeper worker``); in a
prefork pool's children the jobs simply finish.

``celery -A watchkeeper.jobs.celery_app:app worker`` reads the settings from
``$WATCHKEEPER_CONFIG``; ``watchkeeper worker`` from its ``--config``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from celery import Celery
from celery.exceptions import Reject
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from kombu import Queue
from kombu.exceptions import OperationalError
from sqlalchemy import and_, or_, select

from ..config import Settings, load_settings
from ..store.db import Database
from ..store.models import Job, utcnow
from .queue import DatabaseJobQueue, OnCommit

if TYPE_CHECKING:
    from ..api.app import JobRuntime

log = logging.getLogger(__name__)

RUN_JOB = "watchkeeper.run_job"
HEAVY_QUEUE = "watchkeeper.heavy"
LIGHT_QUEUE = "watchkeeper.light"
QUEUES = (HEAVY_QUEUE, LIGHT_QUEUE)
LIGHT_MEDIA = frozenset({"image", "audio"})  # anything else may be a video (an unknown type is sniffed later)


def queue_for(media_type: str | None) -> str:
    """A job's queue by its media type (``audio``, or the API's ``audio_file``): video, or a type not yet known,
    goes to the heavy queue, so light workers never sit on a long decode."""
    return LIGHT_QUEUE if (media_type or "").split("_", 1)[0] in LIGHT_MEDIA else HEAVY_QUEUE


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.celery.broker_url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # a busy worker holds no messages that an idle one could run
        "task_ignore_result": True,  # the job row holds the outcome
        "task_queues": [Queue(name, routing_key=name) for name in QUEUES],
        "task_default_queue": LIGHT_QUEUE,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }


app = Celery("watchkeeper", set_as_current=False)
app.add_defaults(lambda: celery_config(_settings()))  # lazily: importing this module needs no settings
_configured: Settings | None = None


def configure(settings: Settings) -> Celery:
    """Point this process's Celery app at ``settings`` (the CLI's ``--config``) instead of ``$WATCHKEEPER_CONFIG``."""
    global _configured
    _configured = settings
    app.conf.update(celery_config(settings))
    return app


def _settings() -> Settings:
    return _configured or load_settings()


class CeleryJobQueue(DatabaseJobQueue):
    """The database queue that also announces each job that can run on the broker queue of its media type."""

    def __init__(self, db: Database, celery: Celery, **options: Any) -> None:
        super().__init__(db, **options)
        self.celery = celery

    def submit(self, kind: str, params: dict[str, Any], *, job_id: str | None = None, media_type: str | None = None,
               callback_url: str | None = None, notify: bool = False, created_by: int | None = None,
               on_commit: OnCommit | None = None) -> str:
        submitted = super().submit(kind, params, job_id=job_id, media_type=media_type, callback_url=callback_url,
                                   notify=notify, created_by=created_by, on_commit=on_commit)
        self.announce(submitted, media_type)
        return submitted

    def fail(self, job_id: str, token: str, error: dict[str, Any], *, retry: bool,
             on_commit: OnCommit | None = None) -> bool:
        if not super().fail(job_id, token, error, retry=retry, on_commit=on_commit):
            return False
        job = self.get(job_id)
        if job is not None and job.state == "pending":  # put back: announce it for when its retry is due
            self.announce(job_id, job.media_type, countdown=self.retry_delay_s * 2 ** (job.attempts - 1))
        return True

    def release(self, job_id: str, token: str) -> bool:
        if not super().release(job_id, token):
            return False
        job = self.get(job_id)
        self.announce(job_id, job.media_type if job is not None else None)
        return True

    def announce(self, job_id: str, media_type: str | None, *, countdown: float | None = None) -> None:
        """Send "job X is ready"; if the broker is away the job waits in the database for a worker's sweep."""
        try:
            self.celery.send_task(RUN_JOB, args=[job_id], queue=queue_for(media_type), countdown=countdown)
        except OperationalError:
            log.warning("could not announce a job to the broker; a worker's sweep will", extra={"job_id": job_id})

    def announce_stranded(self) -> int:
        """Announce again the jobs whose lease lapsed or that have waited a lease unclaimed; how many."""
        now = utcnow()
        with self.db.session(write=False) as session:
            stranded = session.execute(select(Job.id, Job.media_type).where(or_(
                and_(Job.state == "pending", Job.available_at <= now - self.lease),
                and_(Job.state == "running", Job.lease_expires_at < now),
            ))).all()
        for job_id, media_type in stranded:
            self.announce(job_id, media_type)
        return len(stranded)


class _WorkerRuntime:
    """This process's database, queue and handlers (``build_job_runtime``, as the server's), built on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._runtime: JobRuntime | None = None

    @property
    def built(self) -> JobRuntime | None:
        """This process's runtime if a job or the sweep has built it already."""
        return self._runtime if self._pid == os.getpid() else None

    def __call__(self) -> JobRuntime:
        from ..api.app import build_job_runtime

        with self._lock:
            runtime = self._runtime
            if runtime is None or self._pid != os.getpid():  # a forked pool child must not share connections
                runtime = self._runtime = build_job_runtime(_settings())
                runtime.workers.start()  # no threads of its own under Celery: the lease heartbeat
                self._pid = os.getpid()
            return runtime


worker_runtime = _WorkerRuntime()


@app.task(name=RUN_JOB)
def run_job(job_id: str) -> None:
    """Run job ``job_id`` here if it can run; a duplicate or stale message finds nothing to claim."""
    workers = worker_runtime().workers
    if workers.stopping:  # a message that got in as the shutdown began: back to the broker, for another worker
        raise Reject("this worker is shutting down", requeue=True)
    if not workers.run_one(f"{workers.name}/{threading.current_thread().name}", job_id):
        log.info("job message with nothing to run", extra={"job_id": job_id})


def _sweep() -> None:
    queue = cast(CeleryJobQueue, worker_runtime().queue)  # build_job_runtime's, as queue: celery
    every_s = queue.lease.total_seconds() / 2
    while True:
        time.sleep(every_s)
        try:
            if count := queue.announce_stranded():
                log.info("stranded jobs announced again", extra={"jobs": count})
        except Exception:  # the database may be away for a while; sweep again next round
            log.exception("job sweep failed")


@worker_ready.connect
def _start_sweeping(**_: Any) -> None:
    threading.Thread(target=_sweep, name="job-sweep", daemon=True).start()


_job_shutdown: list[threading.Thread] = []  # the jobs' grace and hand-back, once a shutdown began


@worker_shutting_down.connect
def _hand_back_after_grace(sig: str = "SIGTERM", how: str = "Warm", **_: Any) -> None:
    """In the signal handler: the jobs' grace (none in a cold shutdown) runs in a thread beside Celery's wait."""
    thread = threading.Thread(target=_stop_jobs, args=(sig, how), name="job-shutdown", daemon=True)
    _job_shutdown.append(thread)
    thread.start()


def _stop_jobs(sig: str, how: str) -> None:
    log.info("shutdown: %s received", sig, extra={"celery_shutdown": how})
    runtime = worker_runtime.built
    if runtime is not None:  # else no job has run here
        runtime.workers.stop(0.0 if how == "Cold" else runtime.settings.server.job_shutdown_grace_s)


@worker_shutdown.connect
def _finish_hand_back(**_: Any) -> None:
    """Celery's tasks have returned: let the pool's last steps (and their log lines) end before the process does."""
    for thread in _job_shutdown:
        thread.join()
