"""App Home: who has opened the Home tab (their Home is republished on changes)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0010'
down_revision: Union[str, None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'home_viewers',
        sa.Column('user_id', sa.String(length=32), nullable=False),
        sa.Column('first_opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_home_viewers')))


def downgrade() -> None:
    op.drop_table('home_viewers')
