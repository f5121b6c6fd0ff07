"""The repository interface every storage backend implements (SQLite now, PostgreSQL next).

Methods are coarse and typed with the dataclasses of :mod:`dialflow.store.models`;
nothing above this interface knows SQL. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from .models import (
    ApiKey,
    CallEvent,
    CallRecord,
    CallStatus,
    FlowVersion,
    IdempotencyRecord,
    InboundNumber,
    Organization,
    Trunk,
    WebhookAttempt,
    WebhookDelivery,
)


class StoreError(Exception):
    """Base of storage errors."""


class Conflict(StoreError):
    """A unique key already exists (organization id, trunk id, number, idempotency key…)."""


class Store(Protocol):
    # -- life cycle
    async def open(self) -> None:
        """Connect and bring the schema to the latest migration."""

    async def close(self) -> None: ...

    async def healthy(self) -> bool:
        """A cheap round trip to the database."""

    # -- organizations and keys
    async def create_org(self, org: Organization) -> None:
        """Raises Conflict if the id exists."""

    async def get_org(self, org_id: str) -> Organization | None: ...

    async def update_org(self, org: Organization) -> None: ...

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with this hash, or None."""

    async def revoke_api_key(self, org_id: str, key_id: str) -> bool:
        """False when no such unrevoked key in that organization."""

    # -- trunks
    async def create_trunk(self, trunk: Trunk) -> None:
        """Raises Conflict if (org, id) exists. A default trunk clears the others' default."""

    async def update_trunk(self, trunk: Trunk) -> None:
        """A default trunk clears the others' default flag."""

    async def get_trunk(self, org_id: str, trunk_id: str) -> Trunk | None: ...

    async def get_default_trunk(self, org_id: str) -> Trunk | None: ...

    async def list_trunks(self, org_id: str) -> list[Trunk]: ...

    async def delete_trunk(self, org_id: str, trunk_id: str) -> bool: ...

    # -- flows (versioned; a deleted flow keeps its versions for the calls that used them)
    async def create_flow(
        self, org_id: str, flow_id: str, document: dict[str, object]
    ) -> FlowVersion:
        """Version 1. Raises Conflict if a live (not deleted) flow has that id."""

    async def add_flow_version(
        self, org_id: str, flow_id: str, document: dict[str, object]
    ) -> FlowVersion | None:
        """The next version; None when the flow does not exist (or was deleted)."""

    async def get_flow(
        self, org_id: str, flow_id: str, version: int | None = None
    ) -> FlowVersion | None:
        """The latest version of a live flow, or a given version even of a deleted one."""

    async def list_flows(self, org_id: str) -> list[FlowVersion]:
        """The latest version of every live flow, by id."""

    async def delete_flow(self, org_id: str, flow_id: str) -> bool: ...

    # -- inbound numbers (unique across the server: they are SIP user parts)
    async def add_number(self, number: InboundNumber) -> None:
        """Raises Conflict if the number is taken (by any organization)."""

    async def get_number(self, number: str) -> InboundNumber | None: ...

    async def list_numbers(self, org_id: str) -> list[InboundNumber]: ...

    async def delete_number(self, org_id: str, number: str) -> bool: ...

    # -- calls
    async def insert_call(self, record: CallRecord) -> None: ...

    async def save_call(self, record: CallRecord) -> None:
        """Update every summary field of an existing record."""

    async def append_events(self, events: list[CallEvent]) -> None:
        """Append to the sessions' logs (seq is unique per session)."""

    async def write_sessions(self, events: list[CallEvent], records: list[CallRecord]) -> None:
        """append_events + save of each record, all or nothing, in one write.

        Only the fields a live call changes are saved (status, timestamps, sip, amd,
        hangup_by, duration_ms, flow, error, recording_path); the others are as
        insert_call stored them (use save_call to rewrite those)."""

    async def get_call(self, org_id: str | None, session_id: str) -> CallRecord | None:
        """org_id None = any organization (admin)."""

    async def get_events(self, session_id: str) -> list[CallEvent]:
        """The session's log in seq order."""

    async def list_calls(
        self,
        org_id: str,
        *,
        status: CallStatus | None = None,
        flow_id: str | None = None,
        direction: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[CallRecord], str | None]:
        """Newest first; the cursor is opaque and stable under concurrent inserts."""

    async def count_live_calls(self, org_id: str) -> int:
        """Calls of the organization that are not in a terminal status."""

    async def fail_live_calls(self, now: datetime, node_id: str = "") -> list[str]:
        """Node ``node_id``'s non-terminal calls (and those with no node) become failed,
        hangupBy system. Returns ids."""

    # -- idempotency keys (24 h)
    async def get_idempotency(
        self, org_id: str, key: str, since: datetime
    ) -> IdempotencyRecord | None:
        """The record for that key created at or after ``since``."""

    async def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """False if a record for (org, key) created within the window already exists."""

    # -- webhooks
    async def enqueue_webhook(self, delivery: WebhookDelivery) -> None: ...

    async def due_webhooks(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        """Pending deliveries whose next attempt is due, at most one per session: the
        session's lowest-seq pending one (events of a session go out in order)."""

    async def next_webhook_due(self) -> datetime | None:
        """When the earliest pending delivery is due (None: nothing pending)."""

    async def pending_webhook_sessions(self) -> set[str]:
        """Every session that has a pending delivery."""

    async def update_webhook(self, delivery: WebhookDelivery) -> None: ...

    async def add_webhook_attempt(self, attempt: WebhookAttempt) -> None: ...

    async def list_webhook_attempts(self, session_id: str) -> list[WebhookAttempt]:
        """Every attempt for the session, oldest first."""
