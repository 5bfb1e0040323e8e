"""evidence_references: the artefacts each live incident's evidence names, filled from the incidents' JSON.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchkeeper.artefacts import referenced_address

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_PAGE = 500


def upgrade() -> None:
    references = op.create_table(
        'evidence_references',
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('address', sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
                                name=op.f('fk_evidence_references_incident_id_incidents'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('incident_id', 'kind', name=op.f('pk_evidence_references')),
    )
    op.create_index(op.f('ix_evidence_references_address'), 'evidence_references', ['address'])
    incidents = sa.table('incidents', sa.column('id', sa.Integer()), sa.column('camera', sa.String()),
                         sa.column('data', sa.JSON()))
    connection = op.get_bind()
    last = 0
    while True:  # a page of camera incidents at a time, read whole before their references are written
        page = connection.execute(
            sa.select(incidents.c.id, incidents.c.data).where(incidents.c.camera.is_not(None), incidents.c.id > last)
            .order_by(incidents.c.id).limit(_PAGE)).all()
        if not page:
            return
        rows = [{'incident_id': incident_id, 'kind': kind, 'address': address}
                for incident_id, data in page
                for kind, value in (((data or {}).get('live') or {}).get('evidence') or {}).items()
                if (address := referenced_address(value))]
        if rows:
            op.bulk_insert(references, rows)
        last = page[-1][0]


def downgrade() -> None:
    op.drop_index(op.f('ix_evidence_references_address'), table_name='evidence_references')
    op.drop_table('evidence_references')
