"""findings by account: the credential report of every account of `accounts:` is read,
and each finding names the account it came from ("" for the bot's own)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = sa.text("status = 'OPEN'")


def upgrade() -> None:
    op.drop_index('uq_credential_findings_open', table_name='credential_findings')
    with op.batch_alter_table('credential_findings') as batch:
        batch.add_column(sa.Column('account', sa.String(length=12), nullable=False,
                                   server_default=''))
    op.create_index('uq_credential_findings_open', 'credential_findings',
                    ['account', 'iam_user', 'kind', 'subject'], unique=True,
                    sqlite_where=OPEN, postgresql_where=OPEN)


def downgrade() -> None:
    # the findings of other accounts cannot be told apart from the own account's without
    # the column: they go (the next run of the older version finds its own again)
    op.execute("DELETE FROM credential_findings WHERE account <> ''")
    op.drop_index('uq_credential_findings_open', table_name='credential_findings')
    with op.batch_alter_table('credential_findings') as batch:
        batch.drop_column('account')
    op.create_index('uq_credential_findings_open', 'credential_findings',
                    ['iam_user', 'kind', 'subject'], unique=True,
                    sqlite_where=OPEN, postgresql_where=OPEN)
