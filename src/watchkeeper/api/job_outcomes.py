"""What a finished analysis job sends and shows: seed 000's job body and its webhook.

The webhook is enqueued in the outbox inside the transaction that ends the
job (the queue's ``on_finish``), so a job that finishes once sends once, and
a crash between finishing and sending loses nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..delivery import outbox
from ..jobs.queue import JobView, OnFinish

WEBHOOK_EVENT = "job.finished"

# Seed 000's job words: a client only sees pending, success or error.
LEGACY_STATUS = {"pending": "pending", "running": "pending", "succeeded": "success", "failed": "error",
                 "cancelled": "error"}


def legacy_media_word(media_type: str | None, *, url: bool) -> str:
    """Seed 000's ``media_type`` of a job: image_file, image_url, audio_file, video_file."""
    return f"{media_type or 'media'}_{'url' if url else 'file'}"


def legacy_result(result: dict[str, Any], echo: dict[str, Any]) -> dict[str, Any]:
    """The full analysis result with seed 000's extra fields: the request's path field, source, transcription,
    and ``cross_validation_results`` (its video responses' name for the second opinion)."""
    body = {**result, **echo, "source": "api", "cross_validation_results": result.get("cross_verification")}
    if result.get("media", {}).get("media_type") == "audio":
        body["transcription"] = " ".join(s["text"].strip() for s in result.get("transcript", [])).strip()
    return body


def legacy_job_body(job_id: str, state: str, *, params: dict[str, Any], result: dict[str, Any] | None,
                    error: dict[str, Any] | None, progress: float) -> dict[str, Any]:
    status = LEGACY_STATUS[state]
    body: dict[str, Any] = {"status": status, "job_id": job_id}
    if status == "pending":
        body["progress"] = progress
    elif status == "success":
        body.update(legacy_result(result or {}, params.get("echo", {})))
        body["status"], body["job_id"] = "success", job_id
    else:
        cancelled = state == "cancelled"
        body["error"] = "the job was cancelled" if cancelled else (error or {}).get("message", "the job failed")
        body["code"] = "cancelled" if cancelled else (error or {}).get("code", "job_failed")
    return body


def view_body(job: JobView) -> dict[str, Any]:
    return legacy_job_body(job.id, job.state, params=job.params, result=job.result, error=job.error,
                           progress=job.progress)


def job_finished() -> OnFinish:
    """The queue's ``on_finish`` hook: in the transaction that ends a job, queue its webhook (its alerts are
    queued with its analysis: ``AlertService.analysis_stored``)."""

    def on_finish(session: Session, job: JobView) -> None:
        if job.callback_url:
            outbox.enqueue(session, channel="webhook", target=job.callback_url, event=WEBHOOK_EVENT,
                           payload=view_body(job), dedupe_key=f"job:{job.id}:webhook")

    return on_finish
