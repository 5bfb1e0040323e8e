"""Jobs: list, one, cancel. States: pending, running, succeeded, failed, cancelled; progress in percent."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ...auth import Principal, role_allows
from ...auth.audit import record
from ...errors import ConflictError, NotFoundError
from ...jobs.queue import JobState, JobView
from .. import schemas
from ..deps import Operator, PageDep, ServicesDep, Viewer, client_ip
from ..services import Services

router = APIRouter(prefix="/jobs", tags=["jobs"])


def shown_to(principal: Principal, job: JobView) -> JobView:
    """The job as ``principal`` may see it: the callback URL (it may carry a token) and the resolved server
    path only for admins and the job's creator."""
    if role_allows(principal.role, "admin") or (principal.user_id is not None and principal.user_id == job.created_by):
        return job
    return replace(job, callback_url=None, params={k: v for k, v in job.params.items() if k != "source"})


def get_job(services: Services, principal: Principal, job_id: str) -> JobView:
    job = services.queue.get(job_id)
    if job is None:
        raise NotFoundError(f"no job '{job_id}'")
    return shown_to(principal, job)


@router.get("", response_model=schemas.Page[JobView], summary="Jobs, newest first")
def list_jobs(services: ServicesDep, principal: Viewer, pagination: PageDep,
              state: Annotated[JobState | None, Query()] = None) -> schemas.Page[JobView]:
    jobs, total = services.queue.list(state=state, limit=pagination.limit, offset=pagination.offset)
    return schemas.Page[JobView](items=[shown_to(principal, job) for job in jobs], total=total,
                                 limit=pagination.limit, offset=pagination.offset)


@router.get("/{job_id}", response_model=JobView, summary="One job")
def one_job(job_id: str, services: ServicesDep, principal: Viewer) -> JobView:
    return get_job(services, principal, job_id)


@router.post("/{job_id}/cancel", response_model=JobView, summary="Cancel a pending or running job")
def cancel_job(job_id: str, request: Request, services: ServicesDep, principal: Operator) -> JobView:
    job = get_job(services, principal, job_id)
    cancelled = services.queue.cancel(job_id, on_commit=lambda session: record(
        session, principal, "job.cancel", target_type="job", target_id=job_id, details={"state_was": job.state},
        ip=client_ip(request)))
    if not cancelled:
        raise ConflictError(f"job '{job_id}' is already {get_job(services, principal, job_id).state}")
    return get_job(services, principal, job_id)
