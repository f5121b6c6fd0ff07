"""What the store keeps: plain dataclasses shared by the API, the call service and storage.

Nested, schema-light parts of a call record (AMD result, SIP outcome, flow summary,
the original request) are dicts in camelCase exactly as the API shows them; storage
keeps them as JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class CallStatus(enum.StrEnum):
    """API.md status machine: queued → dialing → ringing → in_progress → one terminal status."""

    QUEUED = "queued"
    DIALING = "dialing"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.NO_ANSWER,
        CallStatus.FAILED,
        CallStatus.CANCELED,
    }
)


@dataclass(slots=True)
class Organization:
    id: str
    name: str
    max_concurrent_calls: int = 10
    calls_per_second: float = 5.0
    allowed_destinations: list[str] = field(default_factory=list)
    webhook_secret: str = ""
    created_at: datetime | None = None


@dataclass(slots=True)
class ApiKey:
    id: str
    org_id: str
    name: str
    key_hash: str  # sha256 hex of the key; the key itself is never stored
    created_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(slots=True)
class Trunk:
    id: str
    org_id: str
    proxy: str  # SIP URI of the carrier's SBC / outbound proxy
    username: str | None = None
    password: str | None = None  # never returned by the API, never logged
    from_user: str | None = None
    is_default: bool = False
    created_at: datetime | None = None


@dataclass(slots=True)
class FlowVersion:
    org_id: str
    flow_id: str
    version: int
    document: dict[str, Any]  # the validated flow document (camelCase, as uploaded)
    created_at: datetime | None = None


@dataclass(slots=True)
class InboundNumber:
    number: str  # unique on the server: the user part of sip:<number>@<sip-host>
    org_id: str
    flow_id: str
    created_at: datetime | None = None


@dataclass(slots=True)
class CallEvent:
    """One entry of a session's log: the source every view of the call is made from."""

    session_id: str
    seq: int
    type: str  # e.g. "status", "sip.progress", "amd", "flow.node", "dtmf", "error"
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CallRecord:
    """A session's summary row (the Call object is built from this plus its events)."""

    session_id: str
    org_id: str
    flow_id: str | None
    flow_version: int | None
    direction: str  # "outbound" | "inbound"
    mode: str  # "sync" | "poll" | "webhook"
    to: str
    from_: str | None
    status: CallStatus
    created_at: datetime
    request: dict[str, Any] = field(default_factory=dict)  # validated create body
    webhook_url: str | None = None
    amd: dict[str, Any] | None = None
    sip: dict[str, Any] = field(default_factory=dict)
    hangup_by: str | None = None
    dialed_at: datetime | None = None
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    flow: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    recording_path: str | None = None
    idempotency_key: str | None = None
    node_id: str | None = None
    """The server running the call (several may share a database): only it, or the node
    that reaps it after it died, may fail the call as abandoned. Not in the API."""


@dataclass(slots=True)
class IdempotencyRecord:
    org_id: str
    key: str
    body_hash: str
    session_id: str
    created_at: datetime


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up: a non-retryable answer or attempts exhausted


@dataclass(slots=True)
class WebhookDelivery:
    """One event to POST to one URL, with its retry state (survives restarts)."""

    id: str  # the event id, "evt_…" (also Dialflow-Event-Id)
    session_id: str
    org_id: str
    seq: int  # order within the session: deliveries go out in seq order
    event_type: str
    url: str
    payload: dict[str, Any]  # the JSON body, built when the event happened
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None


@dataclass(slots=True)
class WebhookAttempt:
    delivery_id: str
    session_id: str
    attempt: int  # 1-based
    at: datetime
    url: str
    event_type: str
    status_code: int | None  # None when no HTTP answer (timeout, connection error, refused)
    error: str | None
    duration_ms: int
    will_retry: bool
