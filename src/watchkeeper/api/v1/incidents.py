"""Incidents: list with filters and pages, one with its evidence, and status changes (audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...artefacts import ArtefactStore
from ...auth import role_allows
from ...auth.audit import record
from ...domain import AnalysisResult, Incident
from ...errors import BadRequestError, NotFoundError, WatchkeeperError
from ...reasoning.reports import picture
from ...store.analyses import set_incident_status
from ...store.models import AuditEntry, IncidentRecord, User, utcnow
from ...store.references import evidence_artefacts
from .. import schemas
from ..deps import IdPath, Operator, PageDep, ServicesDep, Viewer, client_ip
from ..reports import (REPORT_RESPONSES, DownloadQuery, ReportFormatQuery, media_pictures, report_response,
                       report_writer)
from .cameras import EVIDENCE_MEDIA
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
        row = _get(session, incident_id)
        assignee = session.get(User, row.assigned_to) if row.assigned_to is not None else None
        stored = evidence_artefacts(row.data)
        return schemas.IncidentDetail.model_validate(row).model_copy(update={
            "assigned_to_name": assignee.name if assignee else None,
            "evidence_files": [kind for kind in EVIDENCE_MEDIA if kind in stored]})


@router.get("/{incident_id}/history", response_model=list[schemas.IncidentHistoryEntry],
            summary="The incident's changes (status, assignment, evidence), oldest first")
def incident_history(incident_id: IdPath, services: ServicesDep, _: Viewer) -> list[schemas.IncidentHistoryEntry]:
    # The audit log is for admins; this is only what it says about one incident, which its viewers may know.
    with services.db.session(write=False) as session:
        _get(session, incident_id)
        entries = session.scalars(select(AuditEntry).where(
            AuditEntry.target_type == "incident", AuditEntry.target_id == str(incident_id),
            AuditEntry.action.startswith("incident.")).order_by(AuditEntry.at, AuditEntry.id))
        return [schemas.IncidentHistoryEntry.model_validate(e) for e in entries]


@router.patch("/{incident_id}", response_model=schemas.IncidentOut,
              summary="Change an incident's status (with a note), its assignee, or both")
def update_incident(incident_id: IdPath, request: Request, services: ServicesDep, principal: Operator,
                    body: schemas.IncidentUpdate) -> schemas.IncidentOut:
    with services.db.session() as session:
        row = _get(session, incident_id, for_update=True)
        if body.status is not None:
            previous = row.status
            set_incident_status(session, row, body.status)
            row.status_note = body.note
            row.status_changed_by = principal.user_id
            record(session, principal, "incident.status", target_type="incident", target_id=incident_id,
                   details={"from": previous, "to": body.status, "note": body.note}, ip=client_ip(request))
        if "assigned_to" in body.model_fields_set:
            assignee = _assignee(session, body.assigned_to)
            details = {"from": row.assigned_to, "to": body.assigned_to, "name": assignee.name if assignee else None}
            if body.status is None:  # a note without a status change goes with the assignment
                details["note"] = body.note
            row.assigned_to = body.assigned_to
            record(session, principal, "incident.assign", target_type="incident", target_id=incident_id,
                   details=details, ip=client_ip(request))
        row.updated_at = utcnow()
        return schemas.IncidentOut.model_validate(row)


def _assignee(session: Session, user_id: int | None) -> User | None:
    """The user to assign an incident to: an active one who may act on incidents, or None to unassign."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None or user.state != "active" or not role_allows(user.role, "operator"):
        raise BadRequestError(f"user {user_id} is not an active operator or admin")
    return user


@router.get("/{incident_id}/report", summary="The incident's report: seven sections, evidence, timeline, charts",
            response_class=Response, responses=REPORT_RESPONSES)
def incident_report(incident_id: IdPath, request: Request, services: ServicesDep, _: Viewer,
                    report_format: ReportFormatQuery = "pdf", download: DownloadQuery = True) -> Response:
    with services.db.session(write=False) as session:
        row = _get(session, incident_id)
        data = dict(row.data)
        stored = evidence_artefacts(data)
        data.pop("live", None)
        result = AnalysisResult.model_validate(row.analysis.result)
        media_path, camera = row.analysis.media_path, row.camera
    incident = Incident.model_validate(data).model_copy(update={"status": row.status})
    links = {kind: request.url_for("evidence", incident_id=incident_id, kind=kind).path
             for kind in EVIDENCE_MEDIA if kind in stored}
    artefacts = request.app.state.live.artefacts
    snapshot = _read(artefacts, stored.get("snapshot"))
    close_up = _read(artefacts, stored.get("weapon"))
    if snapshot is not None:
        pictures = [picture(f"{incident.category_name}: snapshot", snapshot)]
        if close_up is not None:
            pictures.append(picture("the weapon, close up", close_up))
    else:  # the analysed file's frame, while the file is still there
        pictures = media_pictures(services, media_path, result.model_copy(update={"incidents": [incident]})).get(0, [])
    report = report_writer(services).for_incident(
        result, incident, incident_id=str(incident_id), pictures=pictures, links=links,
        subject={"incident_id": str(incident_id), **({"camera": camera} if camera else {})})
    return report_response(report, report_format, f"incident-{incident_id}", download=download)


def _read(artefacts: ArtefactStore, address: str | None) -> bytes | None:
    """A piece of evidence's bytes, while the artefact store has it and can be reached (as ``media_pictures``:
    the report is still worth having without it)."""
    if address is None:
        return None
    try:
        with artefacts.open(address).stream as stream:
            return stream.read()
    except WatchkeeperError:
        return None
