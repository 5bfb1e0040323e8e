"""What the request handlers share: the database, the queue, the uploads, limits, the pipeline."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from ..auth.ratelimit import TokenBucketLimiter, per_minute
from ..config import Settings
from ..jobs.analysis import FetchUrl
from ..jobs.queue import JobQueue
from ..netguard import UrlPolicy
from ..delivery.dispatcher import Dispatcher
from ..notify.service import AlertService
from ..pipeline import Pipeline
from ..store.db import Database
from ..uploads import MediaRoots, UploadStore


class PipelineHolder:
    """One ``Pipeline`` for the process, built on first use (its models load lazily too)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pipeline: Pipeline | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Pipeline:
        with self._lock:
            if self._pipeline is None:
                self._pipeline = Pipeline(self._settings)
            return self._pipeline


class DatabaseProbe:
    """``SELECT 1`` at most once per ``max_age_s``: load balancers may poll /health as often as they like."""

    def __init__(self, db: Database, *, max_age_s: float = 1.0) -> None:
        self._db = db
        self._max_age_s = max_age_s
        self._checked_at = -math.inf
        self._healthy = False

    def _probe(self) -> bool:
        try:
            with self._db.session(write=False) as session:
                session.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    async def healthy(self) -> bool:
        if time.monotonic() - self._checked_at > self._max_age_s:
            self._healthy = await run_in_threadpool(self._probe)
            self._checked_at = time.monotonic()
        return self._healthy


@dataclass
class Services:
    settings: Settings
    db: Database
    queue: JobQueue
    uploads: UploadStore
    media_roots: MediaRoots
    url_policy: UrlPolicy
    fetch: FetchUrl
    pipeline: PipelineHolder
    alerts: AlertService
    dispatcher: Dispatcher
    link_secret: bytes  # signs links that work without signing in (auth.links)
    wake_workers: Callable[[], None]  # a submit wakes idle job workers instead of waiting for their next poll
    request_limiter: TokenBucketLimiter = field(init=False)
    login_limiter: TokenBucketLimiter = field(init=False)
    database_probe: DatabaseProbe = field(init=False)

    def __post_init__(self) -> None:
        self.database_probe = DatabaseProbe(self.db)
        server = self.settings.server
        self.request_limiter = per_minute(server.rate_limit_per_minute, server.rate_limit_burst)
        self.login_limiter = per_minute(server.login_attempts_per_minute)

    def providers(self) -> list[str]:
        """Seed 000's provider list: the local stack, then every configured provider."""
        return ["local", *(name for name in self.settings.providers if name != "local")]
