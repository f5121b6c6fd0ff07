"""Storage: the :class:`Store` repository interface and its SQL backends.

``await open_store(database_url, data_dir)`` picks the backend (SQLite under the data
dir by default), connects and migrates; nothing above this package knows SQL.
"""

from __future__ import annotations

from .base import Conflict, Store, StoreError
from .cursor import InvalidCursor
from .factory import make_store, open_store
from .models import (
    TERMINAL_STATUSES,
    ApiKey,
    CallEvent,
    CallRecord,
    CallStatus,
    DeliveryState,
    FlowVersion,
    IdempotencyRecord,
    InboundNumber,
    Organization,
    Trunk,
    WebhookAttempt,
    WebhookDelivery,
)
from .sql_calls import IDEMPOTENCY_WINDOW
from .sqlite import SqliteStore

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "TERMINAL_STATUSES",
    "ApiKey",
    "CallEvent",
    "CallRecord",
    "CallStatus",
    "Conflict",
    "DeliveryState",
    "FlowVersion",
    "IdempotencyRecord",
    "InboundNumber",
    "InvalidCursor",
    "Organization",
    "SqliteStore",
    "Store",
    "StoreError",
    "Trunk",
    "WebhookAttempt",
    "WebhookDelivery",
    "make_store",
    "open_store",
]
