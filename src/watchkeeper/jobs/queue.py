"""The job queue: an interface, and its embedded implementation on the application database.

Delivery is at-least-once with exactly-once completion: a claim hands out a
fresh lease token, heartbeats extend the lease, and ``complete``/``fail``
succeed only for the current token. A worker that dies leaves its lease to
expire; the next claim takes the job over (counting an attempt) and the dead
worker's token is worth nothing, so a job never finishes twice. A worker that
shuts down hands its unfinished jobs back (``release``): they are claimable at
once, and its tokens are void just the same.
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from ..store.db import Database
from ..store.models import JOB_STATES, Job, utcnow

JobState = Literal[JOB_STATES]  # type: ignore[valid-type]
OnCommit = Callable[[Session], None]

# The error a job keeps when its last allowed run ended with its worker gone.
WORKER_LOST = {"type": "WorkerLost", "code": "worker_lost",
               "message": "the worker running this job stopped before finishing it"}


@dataclass
class JobView:
    """A job as the queue reports it; also the API's job resource."""

    id: str
    kind: str
    media_type: str | None
    state: JobState
    progress: Annotated[float, Field(description="Percent done.")]
    params: Annotated[dict[str, Any], Field(
        description="`source`, the resolved server path or URL, only for admins and the job's creator; "
                    "`client_source` is the name the request gave.")]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    callback_url: Annotated[str | None, Field(
        description="Only for admins and the job's creator (it may carry a token); null for others.")]
    notify: bool
    analysis_id: str | None
    created_by: int | None

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(**{f.name: getattr(job, f.name) for f in fields(cls)})


@dataclass
class ClaimedJob:
    id: str
    kind: str
    params: dict[str, Any]
    token: str
    attempts: int
    callback_url: str | None
    notify: bool
    created_by: int | None
    media_type: str | None
    waited_s: float  # since it could run (queued, its retry due, or its last runner's lease lapsed)


# Called in the transaction that ends a job (succeeded, failed for good, cancelled), with the job as it ends.
OnFinish = Callable[[Session, JobView], None]


class JobQueue(ABC):
    """What the API and the workers need from a queue; a distributed engine implements the same."""

    @abstractmethod
    def submit(self, kind: str, params: dict[str, Any], *, job_id: str | None = None, media_type: str | None = None,
               callback_url: str | None = None, notify: bool = False, created_by: int | None = None,
               on_commit: OnCommit | None = None) -> str:
        """Queue a job; ``on_commit`` runs in the transaction that adds it (the audit entry of the request)."""

    @abstractmethod
    def get(self, job_id: str) -> JobView | None: ...

    @abstractmethod
    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[JobView], int]:
        """A page of jobs, newest first, and how many match in all."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """How many jobs are in each state, every state named (the metrics' queue depth)."""

    @abstractmethod
    def cancel(self, job_id: str, *, on_commit: OnCommit | None = None) -> bool:
        """Pending or running → cancelled (a running handler learns it at its next heartbeat); False otherwise.

        ``on_commit`` runs in the transaction that cancels it (the audit entry of the request).
        """

    @abstractmethod
    def claim(self, worker: str, *, job_id: str | None = None) -> ClaimedJob | None:
        """The oldest pending job, or a running one whose lease expired; None when there is nothing to do.

        With ``job_id``, that job only, when it can run (a broker's message names the job it is for).
        """

    @abstractmethod
    def heartbeat(self, job_id: str, token: str, progress: float | None = None) -> bool:
        """Extend the lease (and record progress, percent); False once the lease is lost or the job cancelled."""

    @abstractmethod
    def complete(self, job_id: str, token: str, result: dict[str, Any], *, analysis_id: str | None = None,
                 on_commit: OnCommit | None = None) -> bool:
        """Succeed the job if ``token`` is still its lease; ``on_commit`` runs in that same transaction."""

    @abstractmethod
    def fail(self, job_id: str, token: str, error: dict[str, Any], *, retry: bool,
             on_commit: OnCommit | None = None) -> bool:
        """Put the job back for another run (``retry`` and attempts left), after a delay, or fail it for good.

        ``on_commit`` runs in the same transaction, and only when the job fails for good.
        """

    @abstractmethod
    def release(self, job_id: str, token: str) -> bool:
        """Hand a running job back at once (its worker is shutting down): claimable now, this run not counted as
        an attempt, ``token`` void; False if ``token`` is no longer its lease."""


def new_job_id(media_type_word: str) -> str:
    """Seed 000's job id shape: ``image_file_1678888888_abc123``."""
    return f"{media_type_word}_{int(time.time())}_{secrets.token_hex(3)}"


class DatabaseJobQueue(JobQueue):
    """Jobs as rows of the ``jobs`` table: no broker, survives restarts, shared by every process on the database."""

    def __init__(self, db: Database, *, lease_s: float, max_attempts: int, retry_delay_s: float = 5.0,
                 on_finish: OnFinish | None = None) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        # A job whose handler crashed waits this long before its second run, twice as long before its third...
        self.retry_delay_s = retry_delay_s
        self.on_finish = on_finish

    def submit(self, kind: str, params: dict[str, Any], *, job_id: str | None = None, media_type: str | None = None,
               callback_url: str | None = None, notify: bool = False, created_by: int | None = None,
               on_commit: OnCommit | None = None) -> str:
        job = Job(
            id=job_id or new_job_id(media_type or kind), kind=kind, media_type=media_type, params=params,
            max_attempts=self.max_attempts, callback_url=callback_url, notify=notify, created_by=created_by,
        )
        with self.db.session() as session:
            session.add(job)
            if on_commit is not None:
                on_commit(session)
        return job.id

    def get(self, job_id: str) -> JobView | None:
        with self.db.session(write=False) as session:
            job = session.get(Job, job_id)
            return JobView.of(job) if job else None

    def list(self, *, state: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[JobView], int]:
        query = select(Job) if state is None else select(Job).where(Job.state == state)
        with self.db.session(write=False) as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            page = session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset))
            return [JobView.of(job) for job in page], total

    def counts(self) -> dict[str, int]:
        with self.db.session(write=False) as session:
            found = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).tuples().all())
        return {state: found.get(state, 0) for state in JOB_STATES}

    def cancel(self, job_id: str, *, on_commit: OnCommit | None = None) -> bool:
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.state not in ("pending", "running"):
                return False
            self._finish(session, job, "cancelled", on_commit)
            return True

    def claim(self, worker: str, *, job_id: str | None = None) -> ClaimedJob | None:
        # On SQLite the session's BEGIN IMMEDIATE makes select-then-update atomic across processes;
        # on PostgreSQL, FOR UPDATE SKIP LOCKED lets concurrent claimers pass over each other's rows.
        with self.db.session() as session:
            while True:
                now = utcnow()
                query = select(Job).where(or_(
                    and_(Job.state == "pending", Job.available_at <= now),
                    and_(Job.state == "running", Job.lease_expires_at < now),
                )).order_by(Job.created_at, Job.id).limit(1)
                if job_id is not None:
                    query = query.where(Job.id == job_id)
                if self.db.dialect == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                job = session.scalars(query).first()
                if job is None:
                    return None
                if job.attempts < job.max_attempts:
                    break
                # Its last run died with its worker: no attempts left, so it fails instead of running again.
                job.error = WORKER_LOST
                self._finish(session, job, "failed")
            due_at = job.available_at if job.state == "pending" else job.lease_expires_at
            job.state = "running"
            job.attempts += 1
            job.lease_owner = worker
            job.lease_token = secrets.token_hex(16)
            job.lease_expires_at = now + self.lease
            job.started_at = now
            return ClaimedJob(
                id=job.id, kind=job.kind, params=job.params, token=job.lease_token, attempts=job.attempts,
                callback_url=job.callback_url, notify=job.notify, created_by=job.created_by,
                media_type=job.media_type, waited_s=max(0.0, (now - due_at).total_seconds()),
            )

    def heartbeat(self, job_id: str, token: str, progress: float | None = None) -> bool:
        values: dict[str, Any] = {"lease_expires_at": utcnow() + self.lease}
        if progress is not None:
            values["progress"] = min(max(progress, 0.0), 100.0)
        with self.db.session() as session:
            done = session.execute(
                update(Job).where(Job.id == job_id, Job.lease_token == token, Job.state == "running").values(**values)
            )
            return done.rowcount == 1  # type: ignore[attr-defined]

    def complete(self, job_id: str, token: str, result: dict[str, Any], *, analysis_id: str | None = None,
                 on_commit: OnCommit | None = None) -> bool:
        with self.db.session() as session:
            job = self._leased(session, job_id, token)
            if job is None:
                return False
            job.result = result
            job.error = None  # an earlier attempt's
            job.analysis_id = analysis_id
            job.progress = 100.0
            self._finish(session, job, "succeeded", on_commit)
            return True

    def fail(self, job_id: str, token: str, error: dict[str, Any], *, retry: bool,
             on_commit: OnCommit | None = None) -> bool:
        with self.db.session() as session:
            job = self._leased(session, job_id, token)
            if job is None:
                return False
            job.error = error
            if retry and job.attempts < job.max_attempts:
                self._requeue(job, utcnow() + timedelta(seconds=self.retry_delay_s * 2 ** (job.attempts - 1)))
            else:
                self._finish(session, job, "failed", on_commit)
            return True

    def release(self, job_id: str, token: str) -> bool:
        with self.db.session() as session:
            job = self._leased(session, job_id, token)
            if job is None:
                return False
            job.attempts -= 1  # interrupted, not failed: a job handed back at every shutdown never runs out
            job.progress = 0.0
            self._requeue(job, utcnow())
            return True

    @staticmethod
    def _requeue(job: Job, available_at: datetime) -> None:
        job.state = "pending"
        job.available_at = available_at
        job.lease_token = job.lease_owner = job.lease_expires_at = None

    def _leased(self, session: Session, job_id: str, token: str) -> Job | None:
        """The job, locked, if ``token`` is still its lease."""
        job = session.get(Job, job_id, with_for_update=True)
        return job if job is not None and job.state == "running" and job.lease_token == token else None

    def _finish(self, session: Session, job: Job, state: str, on_commit: OnCommit | None = None) -> None:
        job.state = state
        job.finished_at = utcnow()
        job.lease_token = job.lease_expires_at = None
        if on_commit is not None:
            on_commit(session)
        if self.on_finish is not None:
            session.flush()
            self.on_finish(session, JobView.of(job))
