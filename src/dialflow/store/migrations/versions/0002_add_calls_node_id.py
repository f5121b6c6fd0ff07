"""add calls node id: the server that runs each call (several may share one database)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 18:29:39.468770
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Nullable: calls stored before this revision have no owner; the first node to
    # recover takes them (fail_live_calls).
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("node_id")
