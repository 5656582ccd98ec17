"""request lifecycle: reminders to approvers, the requester's waiting DM (Cancel), and who
revoked a grant and why

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0012'
down_revision: Union[str, None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('access_requests') as batch:
        batch.add_column(sa.Column('reminders_sent', sa.Integer(), server_default='0',
                                   nullable=False))
        batch.add_column(sa.Column('next_reminder_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column('waiting_dm_channel', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('waiting_dm_ts', sa.String(length=32), nullable=True))
    op.create_index('ix_access_requests_next_reminder_at', 'access_requests',
                    ['next_reminder_at'])
    with op.batch_alter_table('grants') as batch:
        batch.add_column(sa.Column('revoked_by', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('revoke_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('grants') as batch:
        batch.drop_column('revoke_reason')
        batch.drop_column('revoked_by')
    op.drop_index('ix_access_requests_next_reminder_at', table_name='access_requests')
    with op.batch_alter_table('access_requests') as batch:
        batch.drop_column('waiting_dm_ts')
        batch.drop_column('waiting_dm_channel')
        batch.drop_column('next_reminder_at')
        batch.drop_column('reminders_sent')
