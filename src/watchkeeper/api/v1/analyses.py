"""Stored analyses: list with filters, one with its full result or its report, and submitting a new one as a job."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import select

from ...domain import AnalysisResult
from ...errors import NotFoundError
from ...jobs.queue import JobView
from ...store.models import Analysis
from .. import schemas
from ..deps import Operator, PageDep, ServicesDep, Viewer, client_ip
from ..reports import (REPORT_RESPONSES, DownloadQuery, ReportFormatQuery, media_pictures, report_response,
                       report_writer)
from ..submissions import AnalysisSpec, check, is_url, submit
from .common import page_of, within
from .jobs import get_job

router = APIRouter(prefix="/analyses", tags=["analyses"])


@router.get("", response_model=schemas.Page[schemas.AnalysisSummary], summary="Analyses, newest first")
def list_analyses(
    services: ServicesDep, _: Viewer, pagination: PageDep,
    media_type: Annotated[schemas.MediaTypeName | None, Query()] = None,
    crime_detected: bool | None = None,
    camera: Annotated[str | None, Query(max_length=100)] = None,
    job_id: Annotated[str | None, Query(max_length=80)] = None,
    since: datetime | None = None, until: datetime | None = None,
) -> schemas.Page[schemas.AnalysisSummary]:
    query = within(select(Analysis), Analysis.created_at, since, until)
    for column, value in ((Analysis.media_type, media_type), (Analysis.crime_detected, crime_detected),
                          (Analysis.camera, camera), (Analysis.job_id, job_id)):
        if value is not None:
            query = query.where(column == value)
    with services.db.session(write=False) as session:
        return page_of(session, query, (Analysis.created_at.desc(), Analysis.id), schemas.AnalysisSummary,
                       pagination)


@router.get("/{analysis_id}", response_model=schemas.AnalysisOut, summary="One analysis with its full result")
def one_analysis(analysis_id: str, services: ServicesDep, _: Viewer) -> schemas.AnalysisOut:
    with services.db.session(write=False) as session:
        row = session.get(Analysis, analysis_id)
        if row is None:
            raise NotFoundError(f"no analysis '{analysis_id}'")
        return schemas.AnalysisOut.model_validate(row)


@router.post("", response_model=JobView, status_code=status.HTTP_202_ACCEPTED,
             summary="Analyse a file in a media root or a public URL, as a job")
def submit_analysis(request: Request, services: ServicesDep, principal: Operator,
                    body: schemas.AnalysisSubmit) -> JobView:
    spec = AnalysisSpec(body.source, is_url(body.source), body.media_type, frame_interval_s=body.frame_interval_s,
                        provider=body.provider, camera=body.camera, callback_url=body.callback_url, notify=body.notify)
    job_id, _ = submit(services, principal, check(services, spec), ip=client_ip(request))
    return get_job(services, principal, job_id)


@router.get("/{analysis_id}/report", summary="The analysis's report: seven sections per incident, evidence, "
            "timeline, charts", response_class=Response, responses=REPORT_RESPONSES)
def analysis_report(analysis_id: str, services: ServicesDep, _: Viewer,
                    report_format: ReportFormatQuery = "pdf", download: DownloadQuery = True) -> Response:
    with services.db.session(write=False) as session:
        row = session.get(Analysis, analysis_id)
        if row is None:
            raise NotFoundError(f"no analysis '{analysis_id}'")
        result = AnalysisResult.model_validate(row.result)
        media_path, camera = row.media_path, row.camera
    # The same subject as `watchkeeper report ANALYSIS_ID` writes.
    report = report_writer(services).for_analysis(
        result, subject={"analysis_id": analysis_id, **({"camera": camera} if camera else {})},
        pictures=media_pictures(services, media_path, result))
    return report_response(report, report_format, f"analysis-{analysis_id}", download=download)
