"""Storing an ``AnalysisResult``: the whole result as JSON plus queryable incident and detection rows, and
keeping an incident's status the same in all of them."""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain import AnalysisResult, Incident
from .models import Analysis, DetectionRecord, IncidentRecord, utcnow


def save_analysis(
    session: Session,
    result: AnalysisResult,
    *,
    source: str,
    media_path: str | None = None,
    job_id: str | None = None,
    user_id: int | None = None,
    camera: str | None = None,
    analysis_id: str | None = None,
) -> Analysis:
    """Add the analysis, one incident row per incident and one detection row per piece of its evidence.

    ``source`` is the path or URL as the client named it; ``media_path`` the
    file this machine read (None when the media came from a URL).

    ``analysis_id`` lets a caller name the row before its transaction commits
    (a job's result carries it); a new UUID otherwise.
    """
    created_at = utcnow()
    analysis = Analysis(
        id=analysis_id or str(uuid4()),
        source=source,
        media_path=media_path,
        media_type=result.media.media_type,
        media_sha256=result.media.sha256 or None,
        provider=result.provider,
        config_hash=result.config_hash,
        duration_s=result.media.duration_s,
        crime_detected=result.crime_detected,
        crime_type=result.crime_type,
        max_severity=max((i.severity for i in result.incidents), default=None),
        camera=camera,
        result=result.model_dump(mode="json"),
        job_id=job_id,
        created_by=user_id,
        created_at=created_at,
        incidents=[_incident_record(i, camera, created_at) for i in result.incidents],
    )
    session.add(analysis)
    session.flush()
    return analysis


def set_incident_status(session: Session, record: IncidentRecord, status: str) -> None:
    """Change an incident's status in every stored copy: its column, its JSON and its analysis's result.

    Call with ``record`` locked (FOR UPDATE); the analysis row is locked here, as incidents of one analysis share
    its result.
    """
    analysis = session.get(Analysis, record.analysis_id, with_for_update=True, populate_existing=True)
    assert analysis is not None  # the foreign key
    record.status = status
    record.data = {**record.data, "status": status}
    # Incident rows are added in the result's order (save_analysis), so their ids follow it.
    row_ids = session.scalars(select(IncidentRecord.id).where(IncidentRecord.analysis_id == analysis.id)
                              .order_by(IncidentRecord.id)).all()
    incidents = list(analysis.result["incidents"])
    position = row_ids.index(record.id)
    incidents[position] = {**incidents[position], "status": status}
    analysis.result = {**analysis.result, "incidents": incidents}


def _incident_record(incident: Incident, camera: str | None, created_at: datetime) -> IncidentRecord:
    return IncidentRecord(
        category=incident.category,
        category_name=incident.category_name,
        severity=incident.severity,
        confidence=incident.confidence,
        status=incident.status,
        t_start_s=incident.t_start_s,
        t_end_s=incident.t_end_s,
        summary=incident.summary,
        requires_immediate_action=incident.requires_immediate_action,
        camera=incident.camera or camera,
        zone=incident.zone,
        modalities=list(incident.modalities),
        data=incident.model_dump(mode="json"),
        created_at=created_at,
        updated_at=created_at,
        detections=[
            DetectionRecord(
                analyzer=e.detection.analyzer,
                modality=e.detection.modality,
                label=e.detection.label,
                score=e.detection.score,
                contribution=e.contribution,
                t_start_s=e.detection.t_start_s,
                t_end_s=e.detection.t_end_s,
                box_xywh_norm=list(e.detection.box_xywh_norm) if e.detection.box_xywh_norm else None,
            )
            for e in incident.evidence
        ],
    )
