"""grant activity: when a grant ends, what its holder did during it is looked up in
CloudTrail (after cloudtrail.delay) and kept on the grant

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from accessbot import models  # the custom column types


revision: str = '0006'
down_revision: Union[str, None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # grants that ended before this version have no activity_due_at: never looked up
    with op.batch_alter_table('grants') as batch:
        batch.add_column(sa.Column('activity_due_at', models.base.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('activity_attempts', sa.Integer(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('activity_done_at', models.base.UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('activity', sa.Text(), nullable=True))
    op.create_index('ix_grants_activity_due_at', 'grants', ['activity_due_at'])


def downgrade() -> None:
    op.drop_index('ix_grants_activity_due_at', table_name='grants')
    with op.batch_alter_table('grants') as batch:
        batch.drop_column('activity')
        batch.drop_column('activity_done_at')
        batch.drop_column('activity_attempts')
        batch.drop_column('activity_due_at')
