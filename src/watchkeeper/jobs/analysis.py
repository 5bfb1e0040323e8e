"""The ``analyze`` job: run the pipeline on a server path or URL and store the analysis with the job's completion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

from sqlalchemy.orm import Session

from ..artefacts import ArtefactStore, local_media
from ..media.sources import is_url
from ..uploads import named_as_requested
from ..pipeline import Pipeline
from ..domain import AnalysisResult
from ..store.analyses import save_analysis
from ..store.models import Analysis
from .worker import JobContext, JobHandler

# Downloads a URL under the server's SSRF policy: (body, Content-Type), as ``netguard.fetch_url`` bound to a policy.
FetchUrl = Callable[[str], tuple[bytes, str | None]]


# Called in the transaction that stores a job's analysis: (session, the stored row, the result, the job's notify).
OnStored = Callable[[Session, Analysis, AnalysisResult, bool], None]


def analysis_handler(pipeline_for: Callable[[], Pipeline], artefacts: ArtefactStore, *,
                     fetch_guard: FetchUrl | None = None, on_stored: OnStored | None = None) -> JobHandler:
    """A handler for ``analyze`` jobs.

    ``job.params``: ``source`` (an upload's ``artefact:`` reference, read
    through ``artefacts`` on whichever host runs the job; a server path,
    already checked against the media roots; or a URL), ``media_type``
    (image, audio, video or None to sniff), ``frame_interval_s``,
    ``camera``, ``provider`` (a configured model
    provider to refine the finding, checked by the API). URLs go through
    ``fetch_guard`` when one is given. The analysis row is written in the
    transaction that completes the job, so an analysis exists exactly when
    its job succeeded, once; ``on_stored`` runs in that transaction too (the
    alerts of a job submitted with ``notify``). The job's result is the
    ``AnalysisResult`` JSON plus ``analysis_id``.
    """

    def handle(ctx: JobContext) -> dict[str, Any]:
        params = ctx.job.params
        source: str = params["source"]
        with local_media(artefacts, source) as path:
            media: str | bytes = fetch_guard(source)[0] if fetch_guard is not None and is_url(source) else path
            # A failed job's error is shown to the client and sent to its webhook: it names the file as the
            # client did.
            with named_as_requested(path, params.get("client_source", source)):
                result = pipeline_for().analyze(
                    media, params.get("media_type"), frame_interval_s=params.get("frame_interval_s"),
                    camera=params.get("camera"), on_progress=ctx.progress, provider=params.get("provider"),
                )
        # What the client named (bytes fetched from a URL would otherwise read "<N bytes>").
        result.media.source = params.get("client_source", source)
        analysis_id = str(uuid4())

        def store(session: Session) -> None:
            analysis = save_analysis(session, result, source=result.media.source,
                                     media_path=None if is_url(source) else source, job_id=ctx.job.id,
                                     user_id=ctx.job.created_by, camera=params.get("camera"), analysis_id=analysis_id)
            if on_stored is not None:
                on_stored(session, analysis, result, ctx.job.notify)

        ctx.analysis_id = analysis_id
        ctx.on_commit = store
        return {**result.model_dump(mode="json"), "analysis_id": analysis_id}

    return handle
