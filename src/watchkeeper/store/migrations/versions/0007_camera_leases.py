"""camera_workers, camera_leases: cameras spread over camera workers on several hosts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-12 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('camera_workers',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_camera_workers')),
    )
    op.create_index(op.f('ix_camera_workers_heartbeat_at'), 'camera_workers', ['heartbeat_at'])
    op.create_table('camera_leases',
        sa.Column('camera', sa.String(length=64), nullable=False),
        sa.Column('owner', sa.String(length=64), nullable=True),
        sa.Column('host', sa.String(length=255), nullable=True),
        sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('health', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('camera', name=op.f('pk_camera_leases')),
    )
    op.create_index(op.f('ix_camera_leases_expires_at'), 'camera_leases', ['expires_at'])


def downgrade() -> None:
    op.drop_table('camera_leases')
    op.drop_table('camera_workers')
