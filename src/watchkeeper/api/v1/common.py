"""Helpers shared by the /api/v1 routers: time filters and pages."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ..deps import Pagination
from ..schemas import Page

M = TypeVar("M", bound=BaseModel)


def as_utc(moment: datetime | None) -> datetime | None:
    """Query times without a zone are taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def within(query: Select[Any], column: Any, since: datetime | None, until: datetime | None) -> Select[Any]:
    if since is not None:
        query = query.where(column >= as_utc(since))
    if until is not None:
        query = query.where(column < as_utc(until))
    return query


def page_of(session: Session, query: Select[Any], order: Any, model: type[M], pagination: Pagination) -> Page[M]:
    """One page of ``query`` (rows converted to ``model``) and how many rows match in all."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.scalars(query.order_by(*order).limit(pagination.limit).offset(pagination.offset))
    return Page[model](items=[model.model_validate(r) for r in rows], total=total,  # type: ignore[valid-type]
                       limit=pagination.limit, offset=pagination.offset)
