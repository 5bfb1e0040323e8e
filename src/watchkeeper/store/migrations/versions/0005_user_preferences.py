"""users.preferences: each user's dashboard settings (theme, layout, saved filters).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases: a SQLite batch copy would lose the expression index of 0003.
def upgrade() -> None:
    op.add_column('users', sa.Column('preferences', sa.JSON(), nullable=True))  # none yet: the defaults


def downgrade() -> None:
    op.drop_column('users', 'preferences')
