"""outbox: drop ix_outbox_queue_status. A claim finds each queue's first pending row in
one pass over the pending rows (ix_outbox_pending) since 0.2; nothing reads the index, and
every row the outbox writes, updates or prunes paid for it

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0015'
down_revision: Union[str, None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.drop_index('ix_outbox_queue_status')


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.create_index('ix_outbox_queue_status', ['queue', 'status', 'id'], unique=False)
