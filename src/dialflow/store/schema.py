"""The relational schema, as SQLAlchemy Core tables shared by every SQL backend.

This module is what the queries are written against. The migrations under
``migrations/versions/`` are the history that builds it; a unit test checks that a
database upgraded to head and this metadata agree (Alembic's ``compare_metadata``).

Portability rules (SQLite now, PostgreSQL next):
- timestamps are :class:`UTCDateTime` (``DateTime(timezone=True)``): aware UTC in, aware
  UTC out, whatever the database keeps;
- nested documents are the generic :class:`sqlalchemy.JSON` (JSON text on SQLite, ``json``
  on PostgreSQL, which keeps key order as uploaded, unlike ``jsonb``);
- no reserved words as column names (``to``/``from`` are ``to_uri``/``from_uri``);
- constraint and index names come from one naming convention, so future migrations can
  name what they alter on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no timestamp type: SQLAlchemy stores the fixed-width text
    ``YYYY-MM-DD HH:MM:SS.ffffff`` (so text order is time order, and range queries and
    indexes work) and gives back naive values; PostgreSQL's ``timestamptz`` gives back
    aware values in the session time zone. Both come out as aware UTC here. Naive input
    is refused: it is a bug upstream (which zone was meant?), not something to guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store takes aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers give datetimes
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# A JSON column that keeps Python None as SQL NULL (not the JSON text 'null').
NullableJSON = JSON(none_as_null=True)

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("max_concurrent_calls", Integer, nullable=False),
    Column("calls_per_second", Float, nullable=False),
    Column("allowed_destinations", JSON, nullable=False),
    Column("webhook_secret", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(128), primary_key=True),
    Column(
        "org_id",
        String(128),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(256), nullable=False),
    # Looked up on every authenticated request: unique index.
    Column("key_hash", String(128), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

trunks = Table(
    "trunks",
    metadata,
    Column(
        "org_id",
        String(128),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("id", String(128), primary_key=True),
    Column("proxy", String(1024), nullable=False),
    Column("username", String(256), nullable=True),
    Column("password", String(256), nullable=True),
    Column("from_user", String(256), nullable=True),
    Column("is_default", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
# At most one default trunk per organization, enforced by the database as well as by
# the code that clears the others' flag (partial unique index: SQLite ≥ 3.8, PostgreSQL).
Index(
    "ux_trunks_default",
    trunks.c.org_id,
    unique=True,
    sqlite_where=trunks.c.is_default,
    postgresql_where=trunks.c.is_default,
)

# One row per flow id: the version counter survives deletion, so a flow re-created
# under a deleted id continues after the old highest version.
flows = Table(
    "flows",
    metadata,
    Column(
        "org_id",
        String(128),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("id", String(128), primary_key=True),
    Column("latest_version", Integer, nullable=False),
    Column("deleted_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

flow_versions = Table(
    "flow_versions",
    metadata,
    Column("org_id", String(128), primary_key=True),
    Column("flow_id", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("document", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    ForeignKeyConstraint(["org_id", "flow_id"], ["flows.org_id", "flows.id"], ondelete="CASCADE"),
)

numbers = Table(
    "numbers",
    metadata,
    Column("number", String(128), primary_key=True),
    Column(
        "org_id",
        String(128),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("flow_id", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

calls = Table(
    "calls",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column(
        "org_id",
        String(128),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("flow_id", String(128), nullable=True),
    Column("flow_version", Integer, nullable=True),
    Column("direction", String(16), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("to_uri", String(1024), nullable=False),
    Column("from_uri", String(1024), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("request", JSON, nullable=False),
    Column("webhook_url", String(2048), nullable=True),
    Column("amd", NullableJSON, nullable=True),
    Column("sip", JSON, nullable=False),
    Column("hangup_by", String(16), nullable=True),
    Column("dialed_at", UTCDateTime, nullable=True),
    Column("ringing_at", UTCDateTime, nullable=True),
    Column("answered_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("flow", JSON, nullable=False),
    Column("error", NullableJSON, nullable=True),
    Column("recording_path", String(1024), nullable=True),
    Column("idempotency_key", String(256), nullable=True),
    Column("node_id", String(128), nullable=True),
)
# list_calls: newest first within an organization, keyset on (created_at, session_id).
Index("ix_calls_org_created", calls.c.org_id, calls.c.created_at, calls.c.session_id)
# count_live_calls (status IN live AND org_id = ?) and fail_live_calls (status IN live):
# status first so the start-up sweep is a few index seeks, not a table scan.
Index("ix_calls_status_org", calls.c.status, calls.c.org_id)

call_events = Table(
    "call_events",
    metadata,
    Column(
        "session_id",
        String(64),
        ForeignKey("calls.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("type", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("data", JSON, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column(
        "org_id",
        String(128),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(256), primary_key=True),
    Column("body_hash", String(128), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "session_id",
        String(64),
        ForeignKey("calls.session_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("org_id", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
)
# due_webhooks / next_webhook_due walk pending rows in due order ...
Index(
    "ix_webhook_deliveries_due",
    webhook_deliveries.c.state,
    webhook_deliveries.c.next_attempt_at,
)
# ... and probe "is there an earlier pending delivery of this session?" per candidate.
Index(
    "ix_webhook_deliveries_session",
    webhook_deliveries.c.session_id,
    webhook_deliveries.c.state,
    webhook_deliveries.c.seq,
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        String(64),
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("session_id", String(64), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("url", String(2048), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("will_retry", Boolean, nullable=False),
)
