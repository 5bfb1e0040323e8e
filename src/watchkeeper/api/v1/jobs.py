"""Jobs: list, one, cancel. States: pending, running, succeeded, failed, cancelled; progress in percent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ...auth.audit import record
from ...errors import ConflictError, NotFoundError
from ...jobs.queue import JobState, JobView
from .. import schemas
from ..deps import Operator, PageDep, ServicesDep, Viewer, client_ip
from ..services import Services

router = APIRouter(prefix="/jobs", tags=["jobs"])


def get_job(services: Services, job_id: str) -> JobView:
    job = services.queue.get(job_id)
    if job is None:
        raise NotFoundError(f"no job '{job_id}'")
    return job


@router.get("", response_model=schemas.Page[JobView], summary="Jobs, newest first")
def list_jobs(services: ServicesDep, _: Viewer, pagination: PageDep,
              state: Annotated[JobState | None, Query()] = None) -> schemas.Page[JobView]:
    jobs, total = services.queue.list(state=state, limit=pagination.limit, offset=pagination.offset)
    return schemas.Page[JobView](items=jobs, total=total, limit=pagination.limit, offset=pagination.offset)


@router.get("/{job_id}", response_model=JobView, summary="One job")
def one_job(job_id: str, services: ServicesDep, _: Viewer) -> JobView:
    return get_job(services, job_id)


@router.post("/{job_id}/cancel", response_model=JobView, summary="Cancel a pending or running job")
def cancel_job(job_id: str, request: Request, services: ServicesDep, principal: Operator) -> JobView:
    job = get_job(services, job_id)
    if not services.queue.cancel(job_id):
        raise ConflictError(f"job '{job_id}' is already {get_job(services, job_id).state}")
    with services.db.session() as session:
        record(session, principal, "job.cancel", target_type="job", target_id=job_id,
               details={"state_was": job.state}, ip=client_ip(request))
    return get_job(services, job_id)
