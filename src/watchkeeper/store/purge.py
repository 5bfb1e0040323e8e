"""Bulk deletion of old records (``watchkeeper purge --before DATE [--keep-users]``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select
from sqlalchemy.orm import Session

from ..artefacts import ArtefactStore
from .db import Database
from .models import (
    Analysis, ApiKey, AuditEntry, Base, Delivery, DeliveryAttempt, DetectionRecord, EvidenceReference,
    IncidentRecord, Job, LoginSession, Upload, User,
)
from .references import release

log = logging.getLogger(__name__)

FINISHED_JOB_STATES = ("succeeded", "failed", "cancelled")
FINISHED_DELIVERY_STATES = ("delivered", "dead")


def purge(db: Database, before: datetime, *, keep_users: bool = True,
          artefacts: ArtefactStore | None = None) -> dict[str, int]:
    """Delete what is older than ``before`` (timezone-aware) and return how many rows went, per table.

    Analyses (their incidents and detections with them), finished jobs,
    delivered or dead deliveries (their attempt logs with them), uploads,
    audit entries, and sessions that expired or were revoked. With
    ``keep_users=False`` also the users created before then (their keys and
    sessions with them) and every API key created before then. With
    ``artefacts``, the objects of the uploads and of the live incidents'
    evidence that went are deleted too, unless another row still refers to
    them (``upload_files``, ``evidence_files``).
    """
    old_analyses = select(Analysis.id).where(Analysis.created_at < before)
    old_incidents = select(IncidentRecord.id).where(IncidentRecord.analysis_id.in_(old_analyses))
    old_deliveries = select(Delivery.id).where(
        Delivery.state.in_(FINISHED_DELIVERY_STATES), Delivery.created_at < before
    )
    old_users = select(User.id).where(User.created_at < before)
    dead_sessions: ColumnElement[bool] = or_(LoginSession.expires_at < before, LoginSession.revoked_at < before)
    if not keep_users:
        dead_sessions = or_(dead_sessions, LoginSession.user_id.in_(old_users))

    counts: dict[str, int] = {}
    with db.session() as session:
        # Rows that go by ON DELETE CASCADE are counted before their parents go.
        counts["detections"] = _count(session, select(DetectionRecord.id).where(
            DetectionRecord.incident_id.in_(old_incidents)))
        counts["incidents"] = _count(session, old_incidents)
        evidence = set(session.scalars(select(EvidenceReference.address).where(
            EvidenceReference.incident_id.in_(old_incidents))))
        counts["analyses"] = _delete(session, Analysis, Analysis.created_at < before)
        counts["jobs"] = _delete(session, Job, Job.state.in_(FINISHED_JOB_STATES), Job.finished_at < before)
        counts["delivery_attempts"] = _count(session, select(DeliveryAttempt.id).where(
            DeliveryAttempt.delivery_id.in_(old_deliveries)))
        counts["deliveries"] = _delete(session, Delivery, Delivery.id.in_(old_deliveries))
        uploads = set(session.scalars(select(Upload.artefact).where(Upload.created_at < before,
                                                                    Upload.artefact.is_not(None))))
        counts["uploads"] = _delete(session, Upload, Upload.created_at < before)
        counts["audit_log"] = _delete(session, AuditEntry, AuditEntry.at < before)
        counts["sessions"] = _delete(session, LoginSession, dead_sessions)
        if not keep_users:
            old_keys = or_(ApiKey.created_at < before, ApiKey.user_id.in_(old_users))
            counts["api_keys"] = _delete(session, ApiKey, old_keys)
            counts["users"] = _delete(session, User, User.created_at < before)
    # Objects go only once the rows that referred to them are gone for good.
    if artefacts is not None:
        with db.session() as session:
            counts["upload_files"] = release(session, artefacts, uploads)
            counts["evidence_files"] = release(session, artefacts, evidence - uploads)
    log.info("purged", extra={"before": before.isoformat(), **counts})
    return counts


def _count(session: Session, query: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def _delete(session: Session, model: type[Base], *where: ColumnElement[bool]) -> int:
    result = session.execute(delete(model).where(*where).execution_options(synchronize_session=False))
    return result.rowcount  # type: ignore[attr-defined]
