"""Incidents: list with filters and pages, one with its evidence, and status changes (audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...auth.audit import record
from ...errors import NotFoundError
from ...store.analyses import set_incident_status
from ...store.models import IncidentRecord, utcnow
from .. import schemas
from ..deps import IdPath, Operator, PageDep, ServicesDep, Viewer, client_ip
from .common import page_of, within

router = APIRouter(prefix="/incidents", tags=["incidents"])


@router.get("", response_model=schemas.Page[schemas.IncidentOut], summary="Incidents, newest first")
def list_incidents(
    services: ServicesDep, _: Viewer, pagination: PageDep,
    category: Annotated[list[str] | None, Query(description="Category ids (repeat for several).")] = None,
    status: Annotated[list[schemas.IncidentState] | None, Query(description="Statuses (repeat for several).")] = None,
    min_severity: Annotated[int | None, Query(ge=1, le=5, description="Severity at least this.")] = None,
    camera: Annotated[str | None, Query(max_length=100)] = None,
    analysis_id: Annotated[str | None, Query(max_length=36)] = None,
    since: datetime | None = None, until: datetime | None = None,
) -> schemas.Page[schemas.IncidentOut]:
    query = within(select(IncidentRecord), IncidentRecord.created_at, since, until)
    if category:
        query = query.where(IncidentRecord.category.in_(category))
    if status:
        query = query.where(IncidentRecord.status.in_(status))
    if min_severity is not None:
        query = query.where(IncidentRecord.severity >= min_severity)
    if camera is not None:
        query = query.where(IncidentRecord.camera == camera)
    if analysis_id is not None:
        query = query.where(IncidentRecord.analysis_id == analysis_id)
    with services.db.session(write=False) as session:
        return page_of(session, query, (IncidentRecord.created_at.desc(), IncidentRecord.id.desc()),
                       schemas.IncidentOut, pagination)


def _get(session: Session, incident_id: int, *, for_update: bool = False) -> IncidentRecord:
    row = session.get(IncidentRecord, incident_id, with_for_update=for_update)
    if row is None:
        raise NotFoundError(f"no incident with id {incident_id}")
    return row


@router.get("/{incident_id}", response_model=schemas.IncidentDetail, summary="One incident with its evidence")
def one_incident(incident_id: IdPath, services: ServicesDep, _: Viewer) -> schemas.IncidentDetail:
    with services.db.session(write=False) as session:
        return schemas.IncidentDetail.model_validate(_get(session, incident_id))


@router.patch("/{incident_id}", response_model=schemas.IncidentOut, summary="Change an incident's status, with a note")
def update_incident(incident_id: IdPath, request: Request, services: ServicesDep, principal: Operator,
                    body: schemas.IncidentUpdate) -> schemas.IncidentOut:
    with services.db.session() as session:
        row = _get(session, incident_id, for_update=True)
        previous = row.status
        set_incident_status(session, row, body.status)
        row.status_note = body.note
        row.status_changed_by = principal.user_id
        row.updated_at = utcnow()
        record(session, principal, "incident.status", target_type="incident", target_id=incident_id,
               details={"from": previous, "to": body.status, "note": body.note}, ip=client_ip(request))
        return schemas.IncidentOut.model_validate(row)
