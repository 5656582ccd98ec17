"""approval policy: each approver's Approve of a request (N-of-M), and the duration an
approver approved when it is less than the one asked

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0013'
down_revision: Union[str, None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'request_approvals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('approver', sa.String(length=32), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('duration', sa.Interval(), nullable=True),
        sa.ForeignKeyConstraint(['request_id'], ['access_requests.id'],
                                name=op.f('fk_request_approvals_request_id_access_requests'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_request_approvals')),
        sa.UniqueConstraint('request_id', 'approver',
                            name=op.f('uq_request_approvals_request_id')))
    with op.batch_alter_table('access_requests') as batch_op:
        batch_op.add_column(sa.Column('approved_duration', sa.Interval(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_requests') as batch_op:
        batch_op.drop_column('approved_duration')
    op.drop_table('request_approvals')
