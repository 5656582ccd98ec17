"""break-glass: the request's flag, and the review each break-glass grant opens

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0011'
down_revision: Union[str, None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = sa.text("reviewed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('break_glass', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.create_table(
        'break_glass_reviews',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('grant_id', sa.Integer(), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('remind_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reviewed_by', sa.String(length=32), nullable=True),
        sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['grant_id'], ['grants.id'],
                                name=op.f('fk_break_glass_reviews_grant_id_grants')),
        sa.ForeignKeyConstraint(['request_id'], ['access_requests.id'],
                                name=op.f('fk_break_glass_reviews_request_id_access_requests')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_break_glass_reviews')),
        sa.UniqueConstraint('request_id', name=op.f('uq_break_glass_reviews_request_id')))
    op.create_index('ix_break_glass_reviews_open', 'break_glass_reviews', ['due_at'],
                    sqlite_where=OPEN, postgresql_where=OPEN)


def downgrade() -> None:
    op.drop_index('ix_break_glass_reviews_open', table_name='break_glass_reviews')
    op.drop_table('break_glass_reviews')
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.drop_column('break_glass')
