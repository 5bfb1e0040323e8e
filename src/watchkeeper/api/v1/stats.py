"""Counts for dashboards: analyses, incidents by category, status, severity, camera and day, jobs by state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...store.models import Analysis, IncidentRecord, Job
from .. import schemas
from ..deps import ServicesDep, Viewer
from .common import as_utc, within

router = APIRouter(prefix="/stats", tags=["stats"])


def _utc_day(session: Session, column: Any) -> Any:
    """The UTC calendar day of a timestamp column, as YYYY-MM-DD text, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.date(column)  # SQLite keeps UTC text


def _counts(session: Session, key: Any, query: Any) -> dict[str, int]:
    rows = session.execute(query.add_columns(key, func.count()).group_by(key)).all()
    return {str(k): n for k, n in rows}


@router.get("", response_model=schemas.Stats, summary="Counts over a time range (created_at in [since, until))")
def stats(services: ServicesDep, _: Viewer, since: datetime | None = None,
          until: datetime | None = None) -> schemas.Stats:
    incidents = within(select(), IncidentRecord.created_at, since, until).select_from(IncidentRecord)
    with services.db.session(write=False) as session:
        analyses = within(select(func.count()).select_from(Analysis), Analysis.created_at, since, until)
        crimes = analyses.where(Analysis.crime_detected.is_(True))
        jobs = within(select(), Job.created_at, since, until).select_from(Job)
        return schemas.Stats(
            since=as_utc(since), until=as_utc(until),
            analyses=session.scalar(analyses) or 0,
            crimes_detected=session.scalar(crimes) or 0,
            incidents=session.scalar(incidents.add_columns(func.count())) or 0,
            incidents_by_category=_counts(session, IncidentRecord.category, incidents),
            incidents_by_status=_counts(session, IncidentRecord.status, incidents),
            incidents_by_severity=_counts(session, IncidentRecord.severity, incidents),
            incidents_by_day=_counts(session, _utc_day(session, IncidentRecord.created_at), incidents),
            # Incidents of uploaded files have no camera: they count under "".
            incidents_by_camera=_counts(session, func.coalesce(IncidentRecord.camera, ""), incidents),
            jobs_by_state=_counts(session, Job.state, jobs),
        )
