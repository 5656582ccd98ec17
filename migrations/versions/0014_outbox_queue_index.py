"""outbox: index a queue's rows by status, so that "no earlier pending row in this queue"
is one index probe, not a walk through every row the queue has sent

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0014'
down_revision: Union[str, None] = '0013'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.drop_index('ix_outbox_queue')
        batch_op.create_index('ix_outbox_queue_status', ['queue', 'status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.drop_index('ix_outbox_queue_status')
        batch_op.create_index('ix_outbox_queue', ['queue', 'id'], unique=False)
