"""uploads.artefact: the upload's address in the artefact store, shared by every host.

Uploads stored before this revision have none until a server adopts its uploads folder's files
(``UploadStore.adopt``), which it does at start.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('uploads', sa.Column('artefact', sa.String(length=80), nullable=True))
    op.create_index(op.f('ix_uploads_artefact'), 'uploads', ['artefact'])


def downgrade() -> None:
    op.drop_index(op.f('ix_uploads_artefact'), table_name='uploads')
    op.drop_column('uploads', 'artefact')
