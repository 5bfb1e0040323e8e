"""Analyses asked for over the API: checked at the door, then run now or queued as a job.

Everything a request names is checked before anything runs: the provider,
the path (an upload, or a file inside a media root with no escape; media of
the type asked for), the URL and the callback URL (public addresses only
unless allow-listed). Errors name a file as the request did, never by its
resolved server path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artefacts import as_reference, local_media
from ..auth import Principal
from ..auth.audit import record
from ..domain import MediaType
from ..errors import BadRequestError, UnsupportedMediaError
from ..jobs.queue import new_job_id
from ..media.loader import detect_media_type
from ..store.analyses import save_analysis
from ..uploads import named_as_requested
from .job_outcomes import legacy_media_word, legacy_result
from .services import Services

ANALYZE_JOB = "analyze"


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


@dataclass
class AnalysisSpec:
    source: str  # the path or URL as the client named it
    is_url: bool  # seed 000's endpoints say which one they take; /api/v1 goes by the scheme
    media_type: MediaType | None = None
    frame_interval_s: float | None = None
    provider: str | None = None
    camera: str | None = None
    callback_url: str | None = None
    notify: bool = False
    echo: dict[str, Any] = field(default_factory=dict)  # seed 000's request field, returned with the result


@dataclass
class Checked:
    """A spec whose targets passed the checks: ``target`` is an upload's ``artefact:`` reference, the resolved
    server path, or the URL."""

    spec: AnalysisSpec
    target: str
    media_type: MediaType | None
    provider: str

    def job_params(self) -> dict[str, Any]:
        return {"source": self.target, "media_type": self.media_type, "frame_interval_s": self.spec.frame_interval_s,
                "provider": self.provider, "camera": self.spec.camera, "client_source": self.spec.source,
                "echo": self.spec.echo}


def check(services: Services, spec: AnalysisSpec) -> Checked:
    provider = spec.provider or services.settings.default_provider
    if provider not in services.providers():
        raise BadRequestError(f"unknown provider '{provider}'; configured: {', '.join(services.providers())}")
    if spec.callback_url is not None:
        services.url_policy.check(spec.callback_url)
    if spec.is_url:
        services.url_policy.check(spec.source)
        return Checked(spec, spec.source, spec.media_type, provider)
    target, detected = resolve_media(services, spec.source)
    if detected is None:
        # Sniffing now turns a non-media file into a 4xx at submission instead of a failed job later.
        with named_as_requested(target, spec.source):
            detected = detect_media_type(Path(target), services.settings.media).media_type
    if spec.media_type is not None and not _readable_as(detected, spec.media_type):
        raise UnsupportedMediaError(f"{spec.source}: the content is {detected}, not {spec.media_type}")
    return Checked(spec, target, spec.media_type or detected, provider)


def resolve_media(services: Services, requested: str) -> tuple[str, MediaType | None]:
    """What a request's path names: an upload (its ``artefact:`` reference, which any host reads, and its media
    type, sniffed when it was stored), else a file in a media root (its real path; its type unknown yet)."""
    upload = services.uploads.find(requested)
    if upload is not None:
        return as_reference(upload.artefact), upload.media_type
    return str(services.media_roots.resolve(requested)), None


def _readable_as(detected: MediaType, wanted: MediaType) -> bool:
    """Whether media sniffed as ``detected`` can be analysed as ``wanted`` (a video's sound track as audio)."""
    return detected == wanted or (detected, wanted) == ("video", "audio")


def submit(services: Services, principal: Principal, checked: Checked, *, ip: str | None) -> tuple[str, str]:
    """Queue the analysis; returns the job id and seed 000's media-type word."""
    word = legacy_media_word(checked.media_type, url=checked.spec.is_url)
    job_id = new_job_id(word)
    services.queue.submit(
        ANALYZE_JOB, checked.job_params(), job_id=job_id, media_type=word,
        callback_url=checked.spec.callback_url, notify=checked.spec.notify, created_by=principal.user_id,
        on_commit=lambda session: record(session, principal, "job.submit", target_type="job", target_id=job_id,
                                         details={"source": checked.spec.source, "media_type": word}, ip=ip),
    )
    services.wake_workers()
    return job_id, word


def run_now(services: Services, principal: Principal, checked: Checked, *, ip: str | None) -> dict[str, Any]:
    """Analyse in the request; returns seed 000's body: the full result with its flat fields."""
    with local_media(services.uploads.artefacts, checked.target) as path:
        source: str | bytes = services.fetch(checked.target)[0] if checked.spec.is_url else path
        with named_as_requested(path, checked.spec.source):
            result = services.pipeline().analyze(
                source, checked.media_type, frame_interval_s=checked.spec.frame_interval_s,
                camera=checked.spec.camera, provider=checked.provider,
            )
    result.media.source = checked.spec.source
    result_json = result.model_dump(mode="json")
    with services.db.session() as session:
        analysis = save_analysis(session, result, source=checked.spec.source,
                                 media_path=None if checked.spec.is_url else checked.target,
                                 user_id=principal.user_id, camera=checked.spec.camera)
        record(session, principal, "analysis.create", target_type="analysis", target_id=analysis.id,
               details={"source": checked.spec.source, "crime_detected": result.crime_detected}, ip=ip)
        if checked.spec.notify:
            services.alerts.analysis_stored(session, analysis, result)
        analysis_id = analysis.id
    services.alerts.wake()
    return {**legacy_result(result_json, checked.spec.echo), "analysis_id": analysis_id}
