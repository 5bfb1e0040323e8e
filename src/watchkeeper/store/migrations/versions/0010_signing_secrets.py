"""signing_secrets: the key of signed links, shared through the database instead of a file in each data folder.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signing_secrets',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('secret', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_signing_secrets')),
    )


def downgrade() -> None:
    op.drop_table('signing_secrets')
