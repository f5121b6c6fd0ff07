"""initial schema

Organizations, API keys, trunks, flows and their versions, inbound numbers, calls and
their events, idempotency keys, webhook deliveries and attempts.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

Written by hand, frozen: later changes go in new revisions, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"],
        ["organizations.id"],
        name=f"fk_{table}_org_id_organizations",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("max_concurrent_calls", sa.Integer(), nullable=False),
        sa.Column("calls_per_second", sa.Float(), nullable=False),
        sa.Column("allowed_destinations", sa.JSON(), nullable=False),
        sa.Column("webhook_secret", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        _org_fk("api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_org_id", "api_keys", ["org_id"])

    op.create_table(
        "trunks",
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("proxy", sa.String(1024), nullable=False),
        sa.Column("username", sa.String(256), nullable=True),
        sa.Column("password", sa.String(256), nullable=True),
        sa.Column("from_user", sa.String(256), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_trunks"),
        _org_fk("trunks"),
    )
    is_default = sa.column("is_default", sa.Boolean())
    op.create_index(
        "ux_trunks_default",
        "trunks",
        ["org_id"],
        unique=True,
        sqlite_where=is_default,
        postgresql_where=is_default,
    )

    op.create_table(
        "flows",
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "id", name="pk_flows"),
        _org_fk("flows"),
    )

    op.create_table(
        "flow_versions",
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("flow_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "flow_id", "version", name="pk_flow_versions"),
        sa.ForeignKeyConstraint(
            ["org_id", "flow_id"],
            ["flows.org_id", "flows.id"],
            name="fk_flow_versions_org_id_flow_id_flows",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "numbers",
        sa.Column("number", sa.String(128), nullable=False),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("flow_id", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_numbers"),
        _org_fk("numbers"),
    )
    op.create_index("ix_numbers_org_id", "numbers", ["org_id"])

    op.create_table(
        "calls",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("flow_id", sa.String(128), nullable=True),
        sa.Column("flow_version", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("to_uri", sa.String(1024), nullable=False),
        sa.Column("from_uri", sa.String(1024), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("webhook_url", sa.String(2048), nullable=True),
        sa.Column("amd", sa.JSON(), nullable=True),
        sa.Column("sip", sa.JSON(), nullable=False),
        sa.Column("hangup_by", sa.String(16), nullable=True),
        sa.Column("dialed_at", TS, nullable=True),
        sa.Column("ringing_at", TS, nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("flow", sa.JSON(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("recording_path", sa.String(1024), nullable=True),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("session_id", name="pk_calls"),
        _org_fk("calls"),
    )
    op.create_index("ix_calls_org_created", "calls", ["org_id", "created_at", "session_id"])
    op.create_index("ix_calls_status_org", "calls", ["status", "org_id"])

    op.create_table(
        "call_events",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq", name="pk_call_events"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["calls.session_id"],
            name="fk_call_events_session_id_calls",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("body_hash", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "key", name="pk_idempotency_keys"),
        _org_fk("idempotency_keys"),
    )

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["calls.session_id"],
            name="fk_webhook_deliveries_session_id_calls",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index(
        "ix_webhook_deliveries_session", "webhook_deliveries", ["session_id", "state", "seq"]
    )

    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("will_retry", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name="fk_webhook_attempts_delivery_id_webhook_deliveries",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_webhook_attempts_session_id", "webhook_attempts", ["session_id"])


def downgrade() -> None:
    for table in (
        "webhook_attempts",
        "webhook_deliveries",
        "idempotency_keys",
        "call_events",
        "calls",
        "numbers",
        "flow_versions",
        "flows",
        "trunks",
        "api_keys",
        "organizations",
    ):
        op.drop_table(table)
