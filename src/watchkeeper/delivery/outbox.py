"""Putting a message in the outbox, inside the caller's transaction (so it exists exactly when the change does)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..store.models import Delivery

# INSERT ... ON CONFLICT DO NOTHING: idempotent without a savepoint, and safe against a concurrent twin.
_INSERTS = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


def enqueue(session: Session, *, channel: str, target: str, event: str, payload: dict[str, Any],
            dedupe_key: str | None = None) -> Delivery | None:
    """Add a pending delivery; None when one with ``dedupe_key`` is already there.

    The dispatcher sends it once the caller's transaction commits (call
    ``Dispatcher.wake()`` then to skip the poll interval).
    """
    insert = _INSERTS[session.get_bind().dialect.name]
    statement = (
        insert(Delivery)
        .values(channel=channel, target=target, event=event, payload=payload, dedupe_key=dedupe_key)
        .on_conflict_do_nothing(index_elements=[Delivery.dedupe_key])
        .returning(Delivery)
    )
    return session.scalars(statement).one_or_none()
