"""credential findings, job runs, audit events per finding

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('finding_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_audit_events_finding_id'), ['finding_id'], unique=False)
    op.create_table('credential_findings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('iam_user', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('OPEN', 'RESOLVED', name='findingstatus', native_enum=False, length=16), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_where', sa.String(length=128), nullable=True),
    sa.Column('key_slot', sa.Integer(), nullable=True),
    sa.Column('key_created', sa.DateTime(timezone=True), nullable=True),
    sa.Column('key_id', sa.String(length=32), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('owner', sa.String(length=32), nullable=True),
    sa.Column('last_told_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message_channel', sa.String(length=32), nullable=True),
    sa.Column('message_ts', sa.String(length=32), nullable=True),
    sa.Column('fixing_by', sa.String(length=32), nullable=True),
    sa.Column('fixing_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('snoozed_by', sa.String(length=32), nullable=True),
    sa.Column('snoozed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('final_warning_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=64), nullable=True),
    sa.Column('resolution', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credential_findings'))
    )
    op.create_table('job_runs',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('last_finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('credential_findings', schema=None) as batch_op:
        batch_op.create_index('ix_credential_findings_message', ['message_channel', 'message_ts'], unique=False)
        batch_op.create_index('ix_credential_findings_status', ['status', 'first_seen_at'], unique=False)
        batch_op.create_index('uq_credential_findings_open', ['iam_user', 'kind', 'subject'], unique=True, sqlite_where=sa.text("status = 'OPEN'"), postgresql_where=sa.text("status = 'OPEN'"))



def downgrade() -> None:
    with op.batch_alter_table('credential_findings', schema=None) as batch_op:
        batch_op.drop_index('uq_credential_findings_open', sqlite_where=sa.text("status = 'OPEN'"), postgresql_where=sa.text("status = 'OPEN'"))
        batch_op.drop_index('ix_credential_findings_status')
        batch_op.drop_index('ix_credential_findings_message')

    op.drop_table('credential_findings')
    op.drop_table('job_runs')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_finding_id'))
        batch_op.drop_column('finding_id')
