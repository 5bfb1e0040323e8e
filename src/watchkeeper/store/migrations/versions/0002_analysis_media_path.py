"""analyses.media_path: the file this machine read, beside the name the client gave.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('analyses') as batch:
        batch.add_column(sa.Column('media_path', sa.Text(), nullable=True))
    # Rows written before this revision: jobs stored the resolved server path, requests the client's
    # name; only an absolute path can be a file this machine read.
    analyses = sa.table('analyses', sa.column('source', sa.Text()), sa.column('media_path', sa.Text()))
    op.execute(analyses.update().where(analyses.c.source.like('/%')).values(media_path=analyses.c.source))


def downgrade() -> None:
    with op.batch_alter_table('analyses') as batch:
        batch.drop_column('media_path')
