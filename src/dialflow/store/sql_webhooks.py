"""Webhook deliveries (the durable retry queue) and the record of every attempt.

Ordering rule (API.md: "events of one session are delivered in order"): a delivery
may go out only when it is its session's lowest-seq *pending* delivery. Both
:meth:`WebhooksMixin.due_webhooks` and :meth:`WebhooksMixin.next_webhook_due` apply it,
so the dispatcher never wakes for a delivery it is not allowed to send (a later event
due before its predecessor's retry would otherwise make it spin).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, exists, insert, literal, or_, select, update

from .models import DeliveryState, WebhookAttempt, WebhookDelivery
from .schema import webhook_attempts, webhook_deliveries
from .sql import SqlBase, _all, _execute, _first, utcnow

_PENDING = DeliveryState.PENDING.value

_d = webhook_deliveries.alias("d")
_p = webhook_deliveries.alias("p")
# "An earlier pending delivery of the same session exists" (ties on seq broken by id):
# one seek on ix_webhook_deliveries_session (session_id, state, seq) per candidate.
_HAS_EARLIER_PENDING = exists(
    select(literal(1)).where(
        _p.c.session_id == _d.c.session_id,
        _p.c.state == _PENDING,
        or_(_p.c.seq < _d.c.seq, and_(_p.c.seq == _d.c.seq, _p.c.id < _d.c.id)),
    )
)
# Pending heads of their sessions, in due order: walks ix_webhook_deliveries_due.
_PENDING_HEADS = (
    select(_d)
    .where(_d.c.state == _PENDING, ~_HAS_EARLIER_PENDING)
    .order_by(_d.c.next_attempt_at, _d.c.id)
)
_DUE = _PENDING_HEADS.where(_d.c.next_attempt_at <= bindparam("b_now")).limit(bindparam("b_limit"))
# ORDER BY … LIMIT 1 rather than min(): stops at the first head instead of visiting
# every pending row.
_NEXT_DUE = (
    select(_d.c.next_attempt_at)
    .where(_d.c.state == _PENDING, ~_HAS_EARLIER_PENDING)
    .order_by(_d.c.next_attempt_at)
    .limit(1)
)
_UPDATE_DELIVERY = update(webhook_deliveries).where(webhook_deliveries.c.id == bindparam("b_id"))


def _delivery(row: Row[Any]) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        session_id=row.session_id,
        org_id=row.org_id,
        seq=row.seq,
        event_type=row.event_type,
        url=row.url,
        payload=row.payload,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        last_status=row.last_status,
        last_error=row.last_error,
    )


def _attempt(row: Row[Any]) -> WebhookAttempt:
    return WebhookAttempt(
        delivery_id=row.delivery_id,
        session_id=row.session_id,
        attempt=row.attempt,
        at=row.at,
        url=row.url,
        event_type=row.event_type,
        status_code=row.status_code,
        error=row.error,
        duration_ms=row.duration_ms,
        will_retry=bool(row.will_retry),
    )


class WebhooksMixin(SqlBase):
    """The webhook queue; it survives restarts because it is only ever in the database."""

    async def enqueue_webhook(self, delivery: WebhookDelivery) -> None:
        """Raises Conflict if the id exists. Missing times default to now (due at once)."""
        created_at = delivery.created_at or utcnow()
        values = {
            "id": delivery.id,
            "session_id": delivery.session_id,
            "org_id": delivery.org_id,
            "seq": delivery.seq,
            "event_type": delivery.event_type,
            "url": delivery.url,
            "payload": delivery.payload,
            "state": DeliveryState(delivery.state).value,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at or created_at,
            "created_at": created_at,
            "last_status": delivery.last_status,
            "last_error": delivery.last_error,
        }
        await self._run_write(
            f"webhook delivery {delivery.id!r}", _execute, insert(webhook_deliveries), values
        )

    async def due_webhooks(self, now: datetime, limit: int) -> list[WebhookDelivery]:
        """Pending deliveries whose next attempt is due, at most one per session: the
        session's lowest-seq pending one. Earliest due first, at most ``limit``."""
        if limit <= 0:
            return []
        rows = await self._run_read(_all, _DUE, {"b_now": now, "b_limit": limit})
        return [_delivery(row) for row in rows]

    async def next_webhook_due(self) -> datetime | None:
        """When the earliest sendable pending delivery is due (None: nothing pending).

        Only sessions' head deliveries count (see the module docstring); the time may be
        in the past (due now).
        """
        row = await self._run_read(_first, _NEXT_DUE)
        if row is None:
            return None
        value: datetime = row.next_attempt_at
        return value

    async def pending_webhook_sessions(self) -> set[str]:
        """Every session with a pending delivery (read once when a dispatcher starts)."""
        rows = await self._run_read(
            _all,
            select(webhook_deliveries.c.session_id)
            .where(webhook_deliveries.c.state == _PENDING)
            .distinct(),
        )
        return {row.session_id for row in rows}

    async def update_webhook(self, delivery: WebhookDelivery) -> None:
        """Save the retry state: state, attempts, next_attempt_at, last_status, last_error."""
        values = {
            "b_id": delivery.id,
            "state": DeliveryState(delivery.state).value,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at or utcnow(),
            "last_status": delivery.last_status,
            "last_error": delivery.last_error,
        }
        await self._run_write(
            f"webhook delivery {delivery.id!r}", _execute, _UPDATE_DELIVERY, values
        )

    async def add_webhook_attempt(self, attempt: WebhookAttempt) -> None:
        values = {
            "delivery_id": attempt.delivery_id,
            "session_id": attempt.session_id,
            "attempt": attempt.attempt,
            "at": attempt.at,
            "url": attempt.url,
            "event_type": attempt.event_type,
            "status_code": attempt.status_code,
            "error": attempt.error,
            "duration_ms": attempt.duration_ms,
            "will_retry": attempt.will_retry,
        }
        await self._run_write(
            f"webhook attempt of {attempt.delivery_id!r}",
            _execute,
            insert(webhook_attempts),
            values,
        )

    async def list_webhook_attempts(self, session_id: str) -> list[WebhookAttempt]:
        """Every attempt for the session, oldest first."""
        rows = await self._run_read(
            _all,
            select(webhook_attempts)
            .where(webhook_attempts.c.session_id == session_id)
            .order_by(webhook_attempts.c.at, webhook_attempts.c.id),
        )
        return [_attempt(row) for row in rows]
