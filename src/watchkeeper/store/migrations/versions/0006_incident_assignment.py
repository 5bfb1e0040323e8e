"""incidents.assigned_to: the user who follows an incident up.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases: a SQLite batch copy would lose the expression index of 0003. SQLite
# cannot add a constraint to a table, so there the new column carries its reference inline; elsewhere the
# constraint is added by its conventional name.
def upgrade() -> None:
    op.add_column('incidents', sa.Column('assigned_to', sa.Integer(),
                                         sa.ForeignKey('users.id', name=op.f('fk_incidents_assigned_to_users')),
                                         nullable=True),
                  inline_references=op.get_bind().dialect.name == 'sqlite')


def downgrade() -> None:
    op.drop_column('incidents', 'assigned_to')
