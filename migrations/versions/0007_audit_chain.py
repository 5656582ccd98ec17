"""audit chain: each audit row's hash covers its content and the previous row's hash,
sealed by one sealer at a time (the head in audit_chain); the UTC days uploaded to
audit.s3_bucket; how often a finding was snoozed

Rows already in the database are unsealed: the sealer chains them, in id order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from accessbot import models  # the custom column types


revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UNSEALED = sa.text("seq IS NULL")
GENESIS = "0" * 64  # services.audit_chain.GENESIS: the first row's prev_hash


def upgrade() -> None:
    with op.batch_alter_table('audit_events') as batch:
        batch.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
        batch.create_unique_constraint('uq_audit_events_seq', ['seq'])
    op.create_index('ix_audit_events_unsealed', 'audit_events', ['id'],
                    sqlite_where=UNSEALED, postgresql_where=UNSEALED)
    chain = op.create_table('audit_chain',
                            sa.Column('id', sa.Integer(), nullable=False),
                            sa.Column('last_seq', sa.Integer(), nullable=False),
                            sa.Column('last_hash', sa.String(length=64), nullable=False),
                            sa.PrimaryKeyConstraint('id', name='pk_audit_chain'))
    op.bulk_insert(chain, [{'id': 1, 'last_seq': 0, 'last_hash': GENESIS}])
    op.create_table('audit_exports',
                    sa.Column('day', sa.Date(), nullable=False),
                    sa.Column('key', sa.String(length=1024), nullable=False),
                    sa.Column('rows', sa.Integer(), nullable=False),
                    sa.Column('last_hash', sa.String(length=64), nullable=True),
                    sa.Column('exported_at', models.base.UtcDateTime(timezone=True),
                              nullable=False),
                    sa.PrimaryKeyConstraint('day', name='pk_audit_exports'))
    with op.batch_alter_table('credential_findings') as batch:
        batch.add_column(sa.Column('snooze_count', sa.Integer(), nullable=False,
                                   server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('credential_findings') as batch:
        batch.drop_column('snooze_count')
    op.drop_table('audit_exports')
    op.drop_table('audit_chain')
    op.drop_index('ix_audit_events_unsealed', table_name='audit_events')
    with op.batch_alter_table('audit_events') as batch:
        batch.drop_constraint('uq_audit_events_seq', type_='unique')
        batch.drop_column('hash')
        batch.drop_column('prev_hash')
        batch.drop_column('seq')
