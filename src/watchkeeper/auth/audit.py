"""The audit log: every change, written in the transaction that makes it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..store.models import AuditEntry
from . import Principal


def record(
    session: Session,
    actor: Principal,
    action: str,
    *,
    target_type: str | None = None,
    target_id: object | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor_id=actor.user_id,
        actor_name=actor.name,
        via=actor.via,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or {},
        ip=ip,
    )
    session.add(entry)
    return entry
