"""identity center and accounts: grants name their accounts, kinds grow longer, and an
account whose role cannot be assumed is remembered until it answers again

One live grant per principal, kind, target and accounts: the same group name in two
accounts is two different accesses.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from accessbot import models  # the custom column types


revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LIVE = sa.text("status IN ('PENDING', 'ACTIVE')")


def upgrade() -> None:
    op.create_table('account_faults',
                    sa.Column('account_id', sa.String(length=12), nullable=False),
                    sa.Column('since', models.base.UtcDateTime(timezone=True), nullable=False),
                    sa.Column('last_error', sa.Text(), nullable=False),
                    sa.PrimaryKeyConstraint('account_id'))
    op.drop_index('uq_grants_live_access', table_name='grants')
    with op.batch_alter_table('grants') as batch:
        batch.alter_column('kind', existing_type=sa.String(length=16),
                           type_=sa.String(length=32), existing_nullable=False)
        batch.add_column(sa.Column('accounts', sa.String(length=400), nullable=False,
                                   server_default=''))
    op.create_index('uq_grants_live_access', 'grants',
                    ['iam_user', 'kind', 'target', 'accounts'], unique=True,
                    sqlite_where=LIVE, postgresql_where=LIVE)


def downgrade() -> None:
    op.drop_table('account_faults')
    op.drop_index('uq_grants_live_access', table_name='grants')
    with op.batch_alter_table('grants') as batch:
        batch.drop_column('accounts')
        batch.alter_column('kind', existing_type=sa.String(length=32),
                           type_=sa.String(length=16), existing_nullable=False)
    op.create_index('uq_grants_live_access', 'grants', ['iam_user', 'kind', 'target'],
                    unique=True, sqlite_where=LIVE, postgresql_where=LIVE)
