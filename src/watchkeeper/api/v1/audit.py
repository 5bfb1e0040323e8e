"""The audit log (admins only): who changed what, when, from where."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from ...store.models import AuditEntry
from .. import schemas
from ..deps import Admin, PageDep, ServicesDep
from .common import page_of, within

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=schemas.Page[schemas.AuditOut], summary="Audit entries, newest first")
def list_audit(
    services: ServicesDep, _: Admin, pagination: PageDep,
    action: Annotated[str | None, Query(max_length=60, description="e.g. incident.status, user.create")] = None,
    actor: Annotated[str | None, Query(max_length=100, description="Actor name.")] = None,
    target_type: Annotated[str | None, Query(max_length=40)] = None,
    target_id: Annotated[str | None, Query(max_length=80)] = None,
    since: datetime | None = None, until: datetime | None = None,
) -> schemas.Page[schemas.AuditOut]:
    query = within(select(AuditEntry), AuditEntry.at, since, until)
    for column, value in ((AuditEntry.action, action), (AuditEntry.actor_name, actor),
                          (AuditEntry.target_type, target_type), (AuditEntry.target_id, target_id)):
        if value is not None:
            query = query.where(column == value)
    with services.db.session(write=False) as session:
        return page_of(session, query, (AuditEntry.at.desc(), AuditEntry.id.desc()), schemas.AuditOut, pagination)
