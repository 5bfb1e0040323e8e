"""The application factory: the REST API plus the job workers and the delivery dispatcher it runs.

``create_app(settings)`` builds the FastAPI app; its lifespan opens the
database (migrating it), starts ``server.job_workers`` job threads and the
outbox dispatcher, and stops them at shutdown. Jobs left running by a
crashed process are taken over when their lease lapses.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi_offline import FastAPIOffline
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session
from starlette.requests import Request

from .. import __version__
from ..artefacts import ArtefactStore, open_artefact_store
from ..auth.links import shared_secret
from ..config import Settings
from ..delivery.dispatcher import Dispatcher
from ..delivery.webhook import webhook_sender
from ..domain import AnalysisResult
from ..jobs.analysis import analysis_handler
from ..jobs.queue import DatabaseJobQueue
from ..jobs.worker import WorkerPool
from ..live.monitor import tier_pipelines
from ..live.service import LiveService
from ..netguard import UrlPolicy, fetch_url
from ..notify.service import AlertService
from ..store.db import Database, open_database
from ..store.models import Analysis
from ..uploads import UPLOADS_FOLDER, MediaRoots, UploadStore
from ..web import pages, routes
from . import acknowledge, legacy, live, metrics, seed001, v1
from .job_outcomes import job_finished
from .problems import install_problem_handlers, problem_response
from .services import PipelineHolder, Services
from .submissions import ANALYZE_JOB

log = logging.getLogger(__name__)

JSON_BODY_MAX_BYTES = 1024**2
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and part headers around an upload

DESCRIPTION = """\
Watchkeeper's REST API. Seed 000's paths (`/health`, `/providers`, `/upload`, `/analyze/...`, `/notify`,
`/jobs/{id}`, `/uploads/{name}`) answer in that README's shapes; everything else is under `/api/v1`.

Authenticate with an API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`; create one with
`watchkeeper apikey create`) or with the session cookie from `POST /api/v1/auth/login` (then send the
`X-CSRF-Token` header from the login response on every change). Errors are RFC 9457 problem documents.
"""


@dataclass
class JobRuntime:
    """What runs analysis jobs: all a ``watchkeeper worker`` builds; the server builds the rest on it."""

    settings: Settings
    db: Database
    artefacts: ArtefactStore
    queue: DatabaseJobQueue
    workers: WorkerPool
    pipeline: PipelineHolder
    alerts: AlertService  # an analysis submitted with notify is alerted on by the process that ran it
    link_secret: bytes
    policy: UrlPolicy
    fetch: Callable[..., Any]


@dataclass
class Runtime:
    jobs: JobRuntime
    services: Services
    dispatcher: Dispatcher
    live: LiveService

    @property
    def workers(self) -> WorkerPool:
        return self.jobs.workers

    @property
    def alerts(self) -> AlertService:
        return self.jobs.alerts

    def start(self) -> None:
        self.workers.start()
        self.dispatcher.start()
        self.alerts.start(cameras={name: c.location for name, c in self.live.cameras.items()})
        self.live.start()

    def stop(self) -> None:
        """Cameras first (their open incidents close, their alerts are queued), then jobs (finished within the
        grace or handed back to the queue), then deliveries (sends in progress finish, the rest stay queued)."""
        log.info("shutdown: stopping cameras", extra={"cameras": sorted(self.live.monitors)})
        self.live.stop()
        self.workers.stop(self.services.settings.server.job_shutdown_grace_s)
        log.info("shutdown: stopping deliveries; unsent ones stay in the outbox")
        self.dispatcher.stop()  # before the broker goes: its MQTT sends in progress finish
        self.alerts.stop()
        self.services.db.close()
        log.info("shutdown: done")


def build_job_runtime(settings: Settings) -> JobRuntime:
    """The database, artefact store, queue and job handlers of one process (its job threads not started)."""
    server = settings.server
    db = open_database(settings)
    artefacts = open_artefact_store(settings)
    policy = UrlPolicy(server.allowed_private_networks)
    link_secret = shared_secret(db, settings.data_dir.resolve())
    alerts = AlertService(settings, db, link_secret)
    queue_options: dict[str, Any] = {"lease_s": server.job_lease_s, "max_attempts": server.job_max_attempts,
                                     "retry_delay_s": server.job_retry_delay_s, "on_finish": job_finished()}
    if settings.queue == "celery":  # 'watchkeeper worker' processes run the jobs, not the server's threads
        from ..jobs.celery_app import CeleryJobQueue, configure

        queue: DatabaseJobQueue = CeleryJobQueue(db, configure(settings), **queue_options)
    else:
        queue = DatabaseJobQueue(db, **queue_options)
    pipeline = PipelineHolder(settings)
    # Every download made for an analysis goes through the same guard and limits.
    fetch = partial(fetch_url, policy=policy, max_bytes=settings.media.max_bytes,
                    timeout_s=settings.media.url_timeout_s)

    def alert_if_asked(session: Session, analysis: Analysis, result: AnalysisResult, notify: bool) -> None:
        if notify:
            alerts.analysis_stored(session, analysis, result)

    handler = analysis_handler(pipeline, artefacts, fetch_guard=fetch, on_stored=alert_if_asked)
    workers = WorkerPool(queue, {ANALYZE_JOB: handler},
                         threads=0 if settings.queue == "celery" else server.job_workers, lease_s=server.job_lease_s)
    return JobRuntime(settings, db, artefacts, queue, workers, pipeline, alerts, link_secret, policy, fetch)


def build_runtime(settings: Settings) -> Runtime:
    """The server's: the jobs' runtime, and the uploads, outbox dispatcher and cameras on it."""
    server = settings.server
    data_dir = settings.data_dir.resolve()
    jobs = build_job_runtime(settings)
    uploads = UploadStore(jobs.artefacts, jobs.db, spool_dir=data_dir / "spool", max_bytes=server.upload_max_bytes)
    # Uploads used to be files here: the server moves them into the artefact store. Files put here by hand stay
    # readable by this host's requests, as files of a media root.
    uploads_dir = data_dir / UPLOADS_FOLDER
    uploads_dir.mkdir(parents=True, exist_ok=True)
    uploads.adopt(uploads_dir)
    senders = {"webhook": webhook_sender(server.webhook_secret, jobs.policy, server.webhook_timeout_s),
               **jobs.alerts.senders()}
    dispatcher = Dispatcher(jobs.db, senders, max_attempts=server.delivery_max_attempts,
                            backoff_s=server.delivery_backoff_s, backoff_max_s=server.delivery_backoff_max_s)
    jobs.alerts.wake = dispatcher.wake
    services = Services(
        settings=settings, db=jobs.db, queue=jobs.queue,
        uploads=uploads,
        media_roots=MediaRoots([uploads_dir, *server.media_roots], base=data_dir),
        url_policy=jobs.policy, fetch=jobs.fetch, pipeline=jobs.pipeline, alerts=jobs.alerts, dispatcher=dispatcher,
        wake_workers=jobs.workers.wake, link_secret=jobs.link_secret,
    )
    live = LiveService(settings, jobs.db, evidence_dir=data_dir / "evidence", alerts=jobs.alerts,
                       artefacts=jobs.artefacts,
                       pipelines=lambda: tier_pipelines(settings, jobs.pipeline()))  # one set of models in the process
    return Runtime(jobs, services, dispatcher, live)


class BodyLimit:
    """Refuse request bodies over the limit before reading them (413), and stop reading past it.

    Uploads may be ``server.upload_max_bytes`` (plus multipart framing); other
    bodies are JSON and small. The upload store checks the file's exact size.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], *, upload_max_bytes: int) -> None:
        self.app = app
        self.upload_limit = upload_max_bytes + MULTIPART_OVERHEAD_BYTES

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"] == "/upload" else JSON_BODY_MAX_BYTES
        detail = f"the request body is over the limit of {limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = problem_response(Request(scope), 413, "media_too_large", detail,
                                        headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, detail)  # FastAPI passes HTTPExceptions from body reading through
            return message

        await self.app(scope, limited_receive, send)


def create_app(settings: Settings, *, start_workers: bool = True) -> FastAPI:
    """The API; ``start_workers=False`` serves requests without running jobs or deliveries (tests, tools)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(settings)
        app.state.services = runtime.services
        app.state.live = runtime.live
        if start_workers:
            runtime.start()
        log.info("watchkeeper API ready", extra={"database": runtime.services.db.dialect,
                                                  "job_workers": settings.server.job_workers})
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPIOffline(title="Watchkeeper", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, upload_max_bytes=settings.server.upload_max_bytes)
    if settings.server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.server.cors_origins, allow_credentials=True,
                           allow_methods=["*"], allow_headers=["Authorization", "X-API-Key", "X-CSRF-Token",
                                                               "Content-Type"])
    app.include_router(legacy.router)
    app.include_router(v1.router)
    app.include_router(live.router)
    app.include_router(seed001.router)
    app.include_router(acknowledge.router)
    app.include_router(metrics.router)
    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    return app
