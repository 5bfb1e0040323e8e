"""A pool of worker threads that claim jobs from a queue and run their handlers."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import WatchkeeperError
from ..metrics import JOB_RUN_SECONDS, JOB_WAIT_SECONDS
from .queue import ClaimedJob, JobQueue, OnCommit

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """What a handler gets. It may set ``analysis_id`` and ``on_commit`` (run in the completing transaction)."""

    job: ClaimedJob
    progress: Callable[[float], None]  # percent; also renews the lease; raises JobInterrupted once handed back
    # True once the job was cancelled, its lease lost or the job handed back: the handler may stop early, its
    # result would be dropped.
    cancelled: Callable[[], bool]
    analysis_id: str | None = None
    on_commit: OnCommit | None = None


JobHandler = Callable[[JobContext], dict[str, Any]]


class JobInterrupted(Exception):
    """Raised by ``JobContext.progress`` in a handler whose job this process handed back at shutdown, so the
    handler stops at its next progress report; another worker runs the job."""


@dataclass
class _Running:
    job: ClaimedJob
    lost: bool = False
    handed_back: bool = False


class WorkerPool:
    """``threads`` workers in this process; several pools (processes, hosts) may share one queue.

    A heartbeat thread renews the lease of every running job every third of
    ``lease_s``. A handler's ``WatchkeeperError`` (bad input) fails its job at
    once with the error's ``to_dict()``; any other exception puts the job back
    until it has used its attempts. ``stop`` lets running jobs finish within
    a grace period and hands the others back to the queue.
    """

    def __init__(self, queue: JobQueue, handlers: dict[str, JobHandler], *, threads: int, lease_s: float,
                 poll_s: float = 0.5, name: str | None = None) -> None:
        self.queue = queue
        self.handlers = handlers
        self.threads = threads
        self.poll_s = poll_s
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._heartbeat_s = lease_s / 3  # two heartbeats may fail before the lease lapses
        self._running: dict[str, _Running] = {}
        self._changed = threading.Condition()  # guards _running and _handing_back; notified when a job ends
        self._handing_back = False  # the grace has run out: a job claimed from now on goes back at once
        self._idle = threading.Condition()
        self._wakeups = 0  # counts wake() calls, so a wake between a claim and the wait is not missed
        self._stopping = threading.Event()
        self._stop_heartbeat = threading.Event()
        self._workers: list[threading.Thread] = []
        self._heartbeat: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker threads (none when ``threads`` is 0) and the heartbeat, which ``run_one`` needs too."""
        self._workers = [
            threading.Thread(target=self._work, args=(f"{self.name}/{i}",), name=f"job-worker-{i}", daemon=True)
            for i in range(self.threads)
        ]
        self._heartbeat = threading.Thread(target=self._renew_leases, name="job-heartbeat", daemon=True)
        for thread in [*self._workers, self._heartbeat]:
            thread.start()
        log.info("job workers started", extra={"worker": self.name, "threads": self.threads})

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self, grace_s: float = 30) -> None:
        """Stop claiming, let running jobs finish for up to ``grace_s``, then hand the rest back to the queue, so
        that another worker claims them now rather than when their leases lapse."""
        with self._changed:
            log.info("job workers stopping: no new claims", extra={
                "worker": self.name, "running": sorted(self._running), "grace_s": grace_s})
            self._stopping.set()
            self.wake()
            finished = self._changed.wait_for(lambda: not self._running, grace_s)
            self._handing_back = True
            left = list(self._running.values())
        if not finished:
            log.warning("job workers' grace ran out: handing running jobs back", extra={
                "worker": self.name, "jobs": [running.job.id for running in left]})
        for running in left:
            self._hand_back(running)
        # A moment for a claim in flight to come back (and go back); a handed-back handler's thread is a daemon.
        deadline = time.monotonic() + self.poll_s
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stop_heartbeat.set()  # after the jobs, so running handlers keep their leases until they return
        if self._heartbeat is not None:
            self._heartbeat.join(max(0.0, deadline - time.monotonic()))
        log.info("job workers stopped", extra={"worker": self.name, "handed_back": len(left)})

    def wake(self) -> None:
        """Let idle workers claim at once (call after a submit) instead of at their next poll."""
        with self._idle:
            self._wakeups += 1
            self._idle.notify_all()

    def _work(self, worker: str) -> None:
        while not self._stopping.is_set():
            with self._idle:
                seen = self._wakeups
            try:
                if self.run_one(worker):
                    continue
            except Exception:  # the database may be away for a while; keep the worker alive
                log.exception("job worker error", extra={"worker": worker})
            with self._idle:
                if self._wakeups == seen and not self._stopping.is_set():
                    self._idle.wait(self.poll_s)

    def run_one(self, worker: str, job_id: str | None = None) -> bool:
        """Claim a job (that one, when named) and run it in this thread; False when there was none to claim (or
        the pool is stopping)."""
        if self.stopping:
            return False
        job = self.queue.claim(worker, job_id=job_id)
        if job is None:
            return False
        self._run(job)
        return True

    def _run(self, job: ClaimedJob) -> None:
        running = _Running(job)
        with self._changed:
            late = self._handing_back  # claimed as the grace ran out
            if not late:
                self._running[job.id] = running
        if late:
            self._hand_back(running)
            return
        try:
            finished = self._run_handler(job, running)
        finally:
            with self._changed:
                del self._running[job.id]
                self._changed.notify_all()
        if finished:
            log.info("job run ended", extra={"job_id": job.id})
        elif running.handed_back:
            log.info("handed-back job's run stopped here; its outcome is dropped", extra={"job_id": job.id})
        else:
            log.warning("job lost its lease before finishing; this run's outcome is dropped", extra={"job_id": job.id})

    def _hand_back(self, running: _Running) -> None:
        running.lost = running.handed_back = True  # the handler stops at its next progress report
        try:
            if self.queue.release(running.job.id, running.job.token):
                log.info("job handed back to the queue", extra={"job_id": running.job.id})
        except Exception:  # the database is away: the job runs again once its lease lapses
            log.exception("job not handed back; it runs again when its lease lapses", extra={"job_id": running.job.id})

    def _run_handler(self, job: ClaimedJob, running: _Running) -> bool:
        def progress(percent: float) -> None:
            if running.handed_back:
                raise JobInterrupted(job.id)
            if not self.queue.heartbeat(job.id, job.token, percent):
                running.lost = True

        context = JobContext(job, progress=progress, cancelled=lambda: running.lost)
        handler = self.handlers.get(job.kind)
        if handler is None:
            error = {"type": "UnknownJobKind", "code": "unknown_job_kind",
                     "message": f"no handler for '{job.kind}' jobs"}
            return self.queue.fail(job.id, job.token, error, retry=False)
        log.info("job started", extra={"job_id": job.id, "kind": job.kind, "attempt": job.attempts})
        JOB_WAIT_SECONDS.labels(job.kind).observe(job.waited_s)
        try:
            with JOB_RUN_SECONDS.labels(job.kind).time():
                result = handler(context)
        except JobInterrupted:
            return False
        except WatchkeeperError as exc:
            log.info("job failed", extra={"job_id": job.id, "error": str(exc)})
            return self.queue.fail(job.id, job.token, exc.to_dict(), retry=False)
        except Exception as exc:
            log.exception("job handler crashed", extra={"job_id": job.id, "attempt": job.attempts})
            error = {"type": type(exc).__name__, "code": "internal_error", "message": str(exc)}
            return self.queue.fail(job.id, job.token, error, retry=True)
        return self.queue.complete(job.id, job.token, result, analysis_id=context.analysis_id,
                                   on_commit=context.on_commit)

    def _renew_leases(self) -> None:
        while not self._stop_heartbeat.wait(self._heartbeat_s):
            for running in list(self._running.values()):
                try:
                    if not self.queue.heartbeat(running.job.id, running.job.token):
                        running.lost = True
                except Exception:  # a missed heartbeat is retried next round; the lease has room for two
                    log.exception("job heartbeat failed", extra={"job_id": running.job.id})
