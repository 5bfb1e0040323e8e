"""Seed 000's REST API: its paths, request fields, response fields and job words.

A client written against seed 000's README works unchanged once it sends an
API key. Errors are problem+json like the rest of the API.
"""

from __future__ import annotations

import logging
import mimetypes
import time
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..auth import Principal, role_allows
from ..auth.audit import record
from ..delivery import enqueue
from ..errors import BadRequestError, ConflictError, DeliveryError, NotFoundError, PermissionDeniedError
from ..notify.compose import manual_message
from ..store.db import Database
from ..store.models import Delivery, Job
from ..uploads import UPLOADS_FOLDER
from . import schemas
from .artefact_files import artefact_response
from .deps import MaybePrincipal, Operator, ServicesDep, Viewer, client_ip, viewer_or_signed_link
from .job_outcomes import view_body
from .problems import PROBLEM_RESPONSES
from .services import Services
from .submissions import AnalysisSpec, check, resolve_media, run_now, submit

log = logging.getLogger(__name__)

NOTIFY_WAIT_S = 10.0  # /notify answers 'sent' when the first attempt succeeds within this; 'queued' after it

router = APIRouter(tags=["seed 000"], responses=PROBLEM_RESPONSES)

AnalyzeResponse = schemas.LegacyAnalysis | schemas.Queued


@router.get("/health", response_model=schemas.Health, response_model_exclude_none=True,
            summary="Server status; details for signed-in users")
async def health(services: ServicesDep, principal: MaybePrincipal, response: Response) -> schemas.Health:
    healthy = await services.database_probe.healthy()
    response.status_code = 200 if healthy else 503
    health = schemas.Health(status="healthy" if healthy else "unhealthy", timestamp=datetime.now(timezone.utc))
    if principal is not None:
        health.version = __version__
        health.providers = services.providers()
        health.notification_enabled = "email" in services.dispatcher.senders
        channels = await run_in_threadpool(services.alerts.channel_health, list(services.dispatcher.senders))
        if not role_allows(principal.role, "admin"):  # errors may name addresses and hosts
            channels = {name: {k: v for k, v in state.items() if k != "last_error"} for name, state in channels.items()}
        health.alert_channels = channels
        health.database = services.db.dialect
        health.jobs = await run_in_threadpool(_job_counts, services) if healthy else None
    return health


def _job_counts(services: Services) -> dict[str, int]:
    with services.db.session(write=False) as session:
        return dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).tuples().all())


@router.get("/providers", response_model=schemas.Providers, summary="Analysis providers: local plus configured ones")
def providers(services: ServicesDep, _: Viewer) -> schemas.Providers:
    return schemas.Providers(providers=services.providers(), default_provider=services.settings.default_provider)


@router.post("/upload", response_model=schemas.Upload, summary="Upload a media file (multipart field 'file')")
def upload(request: Request, services: ServicesDep, principal: Operator,
           file: UploadFile = File(description="The media file.")) -> schemas.Upload:
    # The stored bytes go again if the row or its audit entry cannot be written.
    with (services.uploads.saving(file.file, file.filename or "upload", file.content_type) as stored,
          services.db.session() as session):
        row = services.uploads.record(session, stored, uploaded_by=principal.user_id)
        record(session, principal, "upload.create", target_type="upload", target_id=row.id,
               details={"filename": row.filename, "size_bytes": stored.size_bytes}, ip=client_ip(request))
        filename = row.filename
    return schemas.Upload(status="success", file_path=f"{UPLOADS_FOLDER}/{filename}", filename=filename,
                          media_type=stored.media_type, size_bytes=stored.size_bytes, sha256=stored.sha256)


def _analyze(request: Request, services: Services, principal: Principal, spec: AnalysisSpec,
             run_async: bool) -> dict[str, Any] | schemas.Queued:
    checked = check(services, spec)
    ip = client_ip(request)
    if not run_async:
        return run_now(services, principal, checked, ip=ip)
    job_id, word = submit(services, principal, checked, ip=ip)
    return schemas.Queued(status="queued", job_id=job_id, media_type=word, timestamp=datetime.now(timezone.utc))


def _options(body: schemas.AnalyzeOptions) -> dict[str, Any]:
    return {"provider": body.provider, "camera": body.camera, "callback_url": body.callback_url,
            "notify": body.notify}


@router.post("/analyze/image/path", response_model=AnalyzeResponse,
             summary="Analyse an image on the server (in a media root, e.g. uploads/x.jpg)")
def analyze_image_path(request: Request, services: ServicesDep, principal: Operator,
                       body: schemas.ImagePathRequest) -> Any:
    spec = AnalysisSpec(body.image_path, False, "image", echo={"image_path": body.image_path}, **_options(body))
    return _analyze(request, services, principal, spec, body.run_async)


@router.post("/analyze/image/url", response_model=AnalyzeResponse, summary="Analyse an image from a public URL")
def analyze_image_url(request: Request, services: ServicesDep, principal: Operator,
                      body: schemas.ImageUrlRequest) -> Any:
    spec = AnalysisSpec(body.image_url, True, "image", echo={"image_url": body.image_url}, **_options(body))
    return _analyze(request, services, principal, spec, body.run_async)


@router.post("/analyze/audio", response_model=AnalyzeResponse, summary="Analyse an audio file on the server")
def analyze_audio(request: Request, services: ServicesDep, principal: Operator, body: schemas.AudioRequest) -> Any:
    spec = AnalysisSpec(body.audio_path, False, "audio", echo={"audio_path": body.audio_path}, **_options(body))
    return _analyze(request, services, principal, spec, body.run_async)


@router.post("/analyze/video", response_model=AnalyzeResponse,
             summary="Analyse a video on the server (asynchronous by default, a frame every 5 s by default)")
def analyze_video(request: Request, services: ServicesDep, principal: Operator, body: schemas.VideoRequest) -> Any:
    spec = AnalysisSpec(body.video_path, False, "video", frame_interval_s=body.frame_interval,
                        echo={"video_path": body.video_path}, **_options(body))
    return _analyze(request, services, principal, spec, body.run_async)


@router.post("/notify", response_model=schemas.NotifySent,
             summary="E-mail an alert about a detection result: 'sent', or 'queued' while delivery is retried")
def notify(request: Request, services: ServicesDep, principal: Operator,
           body: schemas.NotifyRequest) -> schemas.NotifySent:
    alerts = services.alerts.router.alerts
    if "email" not in services.dispatcher.senders:
        raise ConflictError("no e-mail channel is configured: set alerts.email (or notification.smtp_server)")
    configured = alerts.groups["default"].emails if "default" in alerts.groups else []
    _check_recipients(principal, body.recipients or [], configured)
    recipients = list(body.recipients or configured)
    if not recipients:
        raise BadRequestError("no recipients: give some, or configure the group 'default' (default_recipients)")
    media = resolve_media(services, body.media_path)[0] if body.media_path else None
    message = manual_message(body.detection_result, media_path=media)
    with services.db.session() as session:
        delivery = enqueue(session, channel="email", target=",".join(recipients), event="alert.manual",
                           payload=message.model_dump(mode="json"))
        record(session, principal, "notification.send", details={"recipients": recipients, "subject": message.title},
               ip=client_ip(request))
        delivery_id = delivery.id
    services.dispatcher.wake()
    state, error = wait_for_first_attempt(services.db, delivery_id, NOTIFY_WAIT_S)
    if state == "dead":
        # The mail server's words may name its hosts and accounts: they go to the log, not to the client.
        log.warning("notify: the mail server did not take the message", extra={"error": error})
        raise DeliveryError("the mail server did not take the message")
    severity = body.detection_result.get("potential_severity") or body.detection_result.get("severity")
    return schemas.NotifySent(status="sent" if state == "delivered" else "queued", recipients=recipients,
                              crime_type=body.detection_result.get("crime_type"),
                              severity=severity if isinstance(severity, str) else None,
                              timestamp=datetime.now(timezone.utc))


def wait_for_first_attempt(db: Database, delivery_id: int, timeout_s: float) -> tuple[str, str | None]:
    """The delivery's state once its first attempt is over (or ``timeout_s`` has passed): state, last error."""
    deadline = time.monotonic() + timeout_s
    while True:
        with db.session(write=False) as session:
            row = session.get(Delivery, delivery_id)
            state, attempts, leased, error = row.state, row.attempts, row.lease_expires_at, row.last_error
        if state != "pending" or (attempts > 0 and leased is None) or time.monotonic() >= deadline:
            return state, error
        time.sleep(0.05)


def _check_recipients(principal: Principal, recipients: list[str], configured: list[str]) -> None:
    """Only admins may mail addresses beyond the configured ones: /notify is no relay for anyone's messages."""
    if role_allows(principal.role, "admin"):
        return
    allowed = {address.lower() for address in configured}
    if any(address.lower() not in allowed for address in recipients):
        raise PermissionDeniedError("only admins may send to addresses outside the group 'default'")


@router.get("/jobs/{job_id}", response_model=schemas.LegacyJob,
            summary="A job in seed 000's words: pending, success with the result, or error with a message")
def job_status(job_id: str, services: ServicesDep, _: Viewer) -> dict[str, Any]:
    job = services.queue.get(job_id)
    if job is None:
        raise NotFoundError(f"no job '{job_id}'")
    return view_body(job)


@router.get("/uploads/{filename}", response_class=Response,
            summary="Download an uploaded file (signed in, or with a signed link's expires and signature)",
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The file."}})
def uploaded_file(filename: str, request: Request, services: ServicesDep,
                  _: Annotated[Principal | None, Depends(viewer_or_signed_link)]) -> Response:
    stored = services.uploads.get(filename)
    media_type = mimetypes.guess_type(stored.filename)[0] or "application/octet-stream"
    return artefact_response(services.uploads.artefacts, stored.artefact, media_type,
                             range_header=request.headers.get("range"), headers={"X-Content-Type-Options": "nosniff"})
