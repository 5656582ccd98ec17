"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('access_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('requester_id', sa.String(length=32), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('duration', sa.Interval(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('PENDING', 'APPROVED', 'DENIED', 'EXPIRED', 'FAILED', name='requeststatus', native_enum=False, length=16), nullable=False),
    sa.Column('iam_user', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decide_by', sa.DateTime(timezone=True), nullable=False),
    sa.Column('announced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('announce_lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=32), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.Column('extends_grant_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_requests'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('grant_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_grant_id'), ['grant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_request_id'), ['request_id'], unique=False)

    op.create_table('approval_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('destination', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['access_requests.id'], name=op.f('fk_approval_messages_request_id_access_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_messages')),
    sa.UniqueConstraint('request_id', 'destination', name=op.f('uq_approval_messages_request_id'))
    )
    op.create_table('grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('requester_id', sa.String(length=32), nullable=False),
    sa.Column('iam_user', sa.String(length=128), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=600), nullable=False),
    sa.Column('status', sa.Enum('PENDING', 'ACTIVE', 'REVOKED', 'FAILED', name='grantstatus', native_enum=False, length=16), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('warned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.Column('role_arn', sa.String(length=600), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('alerted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dm_channel', sa.String(length=32), nullable=True),
    sa.Column('dm_ts', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['access_requests.id'], name=op.f('fk_grants_request_id_access_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grants')),
    sa.UniqueConstraint('request_id', name=op.f('uq_grants_request_id'))
    )
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index('ix_grants_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_grants_status_warn_at', ['status', 'warn_at'], unique=False)
        batch_op.create_index('uq_grants_live_access', ['iam_user', 'kind', 'target'],
                              unique=True,
                              sqlite_where=sa.text("status IN ('PENDING', 'ACTIVE')"),
                              postgresql_where=sa.text("status IN ('PENDING', 'ACTIVE')"))

    # access_requests and grants refer to each other: this foreign key can only follow grants
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.create_foreign_key(batch_op.f('fk_access_requests_extends_grant_id_grants'),
                                    'grants', ['extends_grant_id'], ['id'])
        batch_op.create_index('ix_access_requests_status_decide_by', ['status', 'decide_by'], unique=False)
        batch_op.create_index('uq_access_requests_pending_extension', ['extends_grant_id'],
                              unique=True,
                              sqlite_where=sa.text("status = 'PENDING'"),
                              postgresql_where=sa.text("status = 'PENDING'"))


def downgrade() -> None:
    with op.batch_alter_table('access_requests', schema=None) as batch_op:
        batch_op.drop_index('uq_access_requests_pending_extension')
        batch_op.drop_index('ix_access_requests_status_decide_by')
        batch_op.drop_constraint(batch_op.f('fk_access_requests_extends_grant_id_grants'),
                                 type_='foreignkey')

    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('uq_grants_live_access')
        batch_op.drop_index('ix_grants_status_warn_at')
        batch_op.drop_index('ix_grants_status_expires_at')

    op.drop_table('grants')
    op.drop_table('approval_messages')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_request_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_grant_id'))

    op.drop_table('audit_events')
    op.drop_table('access_requests')
