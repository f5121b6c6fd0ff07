"""An in-memory implementation of the webhook part of the Store protocol, for tests.

It copies rows in and out (as a database does), so a test sees only what the dispatcher
wrote back, never an object it is still mutating.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import datetime

from dialflow.store.base import Conflict
from dialflow.store.models import DeliveryState, WebhookAttempt, WebhookDelivery


class FakeWebhookStore:
    """enqueue_webhook, due_webhooks, next_webhook_due, pending_webhook_sessions,
    update_webhook, attempts."""

    def __init__(self) -> None:
        self.deliveries: dict[str, WebhookDelivery] = {}
        self.attempts: list[WebhookAttempt] = []
        self.due_calls = 0
        self._changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Test helper: until ``predicate()`` holds after some store call (no polling)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    def state(self, delivery_id: str) -> DeliveryState:
        return self.deliveries[delivery_id].state

    async def enqueue_webhook(self, delivery: WebhookDelivery) -> None:
        if delivery.id in self.deliveries:
            raise Conflict(delivery.id)
        self.deliveries[delivery.id] = copy.deepcopy(delivery)
        await self._notify()

    def _pending(self) -> list[WebhookDelivery]:
        return [d for d in self.deliveries.values() if d.state is DeliveryState.PENDING]

    async def due_webhooks(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        self.due_calls += 1
        heads: dict[str, WebhookDelivery] = {}
        for d in self._pending():
            head = heads.get(d.session_id)
            if head is None or d.seq < head.seq:
                heads[d.session_id] = d
        due = [d for d in heads.values() if d.next_attempt_at is None or d.next_attempt_at <= now]
        due.sort(key=lambda d: (d.next_attempt_at or now, d.session_id, d.seq))
        await self._notify()
        return [copy.deepcopy(d) for d in due[:limit]]

    async def next_webhook_due(self) -> datetime | None:
        # The plain reading of the Protocol ("the earliest pending delivery"), which may be
        # a later event blocked behind its session's head: the dispatcher must cope.
        times = [d.next_attempt_at for d in self._pending() if d.next_attempt_at is not None]
        return min(times) if times else None

    async def pending_webhook_sessions(self) -> set[str]:
        return {d.session_id for d in self._pending()}

    async def update_webhook(self, delivery: WebhookDelivery) -> None:
        assert delivery.id in self.deliveries
        self.deliveries[delivery.id] = copy.deepcopy(delivery)
        await self._notify()

    async def add_webhook_attempt(self, attempt: WebhookAttempt) -> None:
        self.attempts.append(copy.deepcopy(attempt))
        await self._notify()

    async def list_webhook_attempts(self, session_id: str) -> list[WebhookAttempt]:
        return [copy.deepcopy(a) for a in self.attempts if a.session_id == session_id]

    async def get_delivery(self, delivery_id: str) -> WebhookDelivery:
        """Test helper (not in the Protocol)."""
        return copy.deepcopy(self.deliveries[delivery_id])
