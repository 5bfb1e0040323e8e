"""users: names unique regardless of case (a unique index on lower(name)).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # uq_users_name stays: dropping it would rebuild the table on SQLite, and dropping users there
    # cascades to its sessions and keys. Fails if two names differ only in case; an admin renames one first.
    op.create_index('uq_users_name_lower', 'users', [sa.func.lower(sa.column('name'))], unique=True)


def downgrade() -> None:
    op.drop_index('uq_users_name_lower', table_name='users')
