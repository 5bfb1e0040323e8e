"""Bulk deletion of old records (``watchkeeper purge --before DATE [--keep-users]``)."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select
from sqlalchemy.orm import Session

from .db import Database
from .models import (
    Analysis, ApiKey, AuditEntry, Base, Delivery, DeliveryAttempt, DetectionRecord, IncidentRecord, Job,
    LoginSession, Upload, User,
)

log = logging.getLogger(__name__)

FINISHED_JOB_STATES = ("succeeded", "failed", "cancelled")
FINISHED_DELIVERY_STATES = ("delivered", "dead")


def purge(
    db: Database, before: datetime, *, keep_users: bool = True, uploads_dir: Path | None = None,
    evidence_dir: Path | None = None,
) -> dict[str, int]:
    """Delete what is older than ``before`` (timezone-aware) and return how many rows went, per table.

    Analyses (their incidents and detections with them), finished jobs,
    delivered or dead deliveries (their attempt logs with them), uploads (and
    their files in ``uploads_dir``), audit entries, and sessions that expired
    or were revoked. With ``keep_users=False`` also the users created before
    then (their keys and sessions with them) and every API key created before then.
    ``upload_files`` counts the files removed; with ``evidence_dir``, the
    evidence folders of the live incidents that went are removed too
    (``evidence_folders``).
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
        evidence = [data for data in session.scalars(select(IncidentRecord.data).where(
            IncidentRecord.id.in_(old_incidents), IncidentRecord.camera.is_not(None)))] if evidence_dir else []
        counts["analyses"] = _delete(session, Analysis, Analysis.created_at < before)
        counts["jobs"] = _delete(session, Job, Job.state.in_(FINISHED_JOB_STATES), Job.finished_at < before)
        counts["delivery_attempts"] = _count(session, select(DeliveryAttempt.id).where(
            DeliveryAttempt.delivery_id.in_(old_deliveries)))
        counts["deliveries"] = _delete(session, Delivery, Delivery.id.in_(old_deliveries))
        upload_names = list(session.scalars(select(Upload.filename).where(Upload.created_at < before)))
        counts["uploads"] = _delete(session, Upload, Upload.created_at < before)
        counts["audit_log"] = _delete(session, AuditEntry, AuditEntry.at < before)
        counts["sessions"] = _delete(session, LoginSession, dead_sessions)
        if not keep_users:
            old_keys = or_(ApiKey.created_at < before, ApiKey.user_id.in_(old_users))
            counts["api_keys"] = _delete(session, ApiKey, old_keys)
            counts["users"] = _delete(session, User, User.created_at < before)
    # Files go only once their rows are gone for good.
    counts["upload_files"] = _remove_files(uploads_dir, upload_names) if uploads_dir else 0
    if evidence_dir is not None:
        counts["evidence_folders"] = _remove_evidence(evidence_dir, evidence)
    log.info("purged", extra={"before": before.isoformat(), **counts})
    return counts


def _count(session: Session, query: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def _delete(session: Session, model: type[Base], *where: ColumnElement[bool]) -> int:
    result = session.execute(delete(model).where(*where).execution_options(synchronize_session=False))
    return result.rowcount  # type: ignore[attr-defined]


def _remove_evidence(root: Path, incidents: list[dict[str, Any]]) -> int:
    """Each live incident's evidence folder (the folder of its snapshot, clip and sound), if under ``root``."""
    root = root.resolve()
    folders = {Path(path).resolve().parent for data in incidents
               for path in (data or {}).get("live", {}).get("evidence", {}).values() if path}
    removed = 0
    for folder in folders:
        if folder.is_relative_to(root) and folder != root and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _remove_files(folder: Path, names: list[str]) -> int:
    removed = 0
    for name in names:
        if Path(name).name != name:  # stored names are plain names; anything else is not ours to delete
            log.warning("upload name is not a plain file name; file left", extra={"filename": name})
            continue
        path = folder / name
        if path.is_file():
            path.unlink()
            removed += 1
    return removed
