"""access review: review runs, the items asked about (one open per access), and where
each message listing them was posted

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0009'
down_revision: Union[str, None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = sa.text("status = 'OPEN'")


def upgrade() -> None:
    op.create_table(
        'review_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account', sa.String(length=12), server_default='', nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome_posted_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_review_runs')))
    op.create_index('ix_review_runs_open', 'review_runs', ['account', 'closed_at'])
    op.create_table(
        'review_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('account', sa.String(length=12), server_default='', nullable=False),
        sa.Column('target_kind', sa.String(length=32), nullable=False),
        sa.Column('target', sa.String(length=600), nullable=False),
        sa.Column('resource', sa.String(length=64), nullable=True),
        sa.Column('target_note', sa.Text(), nullable=True),
        sa.Column('principal_kind', sa.String(length=32), nullable=False),
        sa.Column('principal', sa.String(length=600), nullable=False),
        sa.Column('principal_label', sa.String(length=200), nullable=True),
        sa.Column('principal_slack', sa.String(length=32), nullable=True),
        sa.Column('via', sa.String(length=600), server_default='', nullable=False),
        sa.Column('how', sa.String(length=200), nullable=False),
        sa.Column('last_activity', sa.DateTime(timezone=True), nullable=True),
        sa.Column('unused', sa.Text(), nullable=True),
        sa.Column('status', sa.Enum('OPEN', 'KEPT', 'REMOVED', 'GONE', 'UNANSWERED',
                                    name='reviewstatus', native_enum=False, length=16),
                  nullable=False),
        sa.Column('owner', sa.String(length=400), nullable=False),
        sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_told_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('detail', sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['review_runs.id'],
                                name=op.f('fk_review_items_run_id_review_runs')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_review_items')))
    op.create_index('ix_review_items_run', 'review_items', ['run_id', 'status'])
    op.create_index('uq_review_items_open', 'review_items',
                    ['account', 'target_kind', 'target', 'principal_kind', 'principal', 'via'],
                    unique=True, sqlite_where=OPEN, postgresql_where=OPEN)
    op.create_table(
        'review_copies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=32), nullable=False),
        sa.Column('ts', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['review_items.id'],
                                name=op.f('fk_review_copies_item_id_review_items'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_review_copies')),
        sa.UniqueConstraint('item_id', 'channel', 'ts',
                            name=op.f('uq_review_copies_item_id')))
    op.create_index('ix_review_copies_message', 'review_copies', ['channel', 'ts'])


def downgrade() -> None:
    op.drop_index('ix_review_copies_message', table_name='review_copies')
    op.drop_table('review_copies')
    op.drop_index('uq_review_items_open', table_name='review_items')
    op.drop_index('ix_review_items_run', table_name='review_items')
    op.drop_table('review_items')
    op.drop_index('ix_review_runs_open', table_name='review_runs')
    op.drop_table('review_runs')
