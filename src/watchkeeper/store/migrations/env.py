"""Alembic environment, run by ``Database.upgrade`` on an open connection (no alembic.ini).

A new revision after a change to ``models.py``, against a database at the current head::

    from alembic import command
    from watchkeeper.store.db import Database, alembic_config

    database = Database(url)
    database.upgrade()
    with database.engine.begin() as connection:
        command.revision(alembic_config(connection), message="what changed", autogenerate=True)
"""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext

from watchkeeper.store.models import Base, UtcDateTime


def render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | bool:
    # Migrations name plain SQLAlchemy types, never our model module (which keeps changing after them).
    if kind == "type" and isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them; batch mode does that and is plain ALTER elsewhere
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
