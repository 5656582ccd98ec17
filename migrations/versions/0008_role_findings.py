"""role findings: a finding's detail (a role's maximum session, whom its trust policy
lets in), for the findings about IAM roles kept in credential_findings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0008'
down_revision: Union[str, None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ROLE_KINDS = "('role_unused', 'role_long_session', 'role_open_trust')"


def upgrade() -> None:
    with op.batch_alter_table('credential_findings') as batch:
        batch.add_column(sa.Column('detail', sa.String(length=200), nullable=True))


def downgrade() -> None:
    # the older version knows no role findings (it would take them for IAM users'): they
    # go; the audit trail keeps what happened to them
    op.execute(f"DELETE FROM credential_findings WHERE kind IN {ROLE_KINDS}")
    with op.batch_alter_table('credential_findings') as batch:
        batch.drop_column('detail')
