"""The webhook queue: per-session order, one per session, attempts (store/sql_webhooks.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dialflow.store import (
    Conflict,
    DeliveryState,
    SqliteStore,
    WebhookAttempt,
    WebhookDelivery,
)

from .conftest import MakeCall, at, reopen


def delivery(session: str, seq: int, due: float, **fields: object) -> WebhookDelivery:
    values: dict[str, object] = {
        "id": f"evt_{session}_{seq}",
        "session_id": session,
        "org_id": "acme",
        "seq": seq,
        "event_type": f"call.e{seq}",
        "url": "https://example.com/hook",
        "payload": {"id": f"evt_{session}_{seq}", "call": {"sessionId": session}},
        "next_attempt_at": at(due),
        "created_at": at(0),
    }
    values.update(fields)
    return WebhookDelivery(**values)  # type: ignore[arg-type]


@pytest.fixture
async def calls(store: SqliteStore, make_call: MakeCall) -> list[str]:
    ids = ["s1", "s2", "s3"]
    for sid in ids:
        await store.insert_call(make_call(sid))
    return ids


async def due_ids(store: SqliteStore, now: float, limit: int = 100) -> list[str]:
    return [d.id for d in await store.due_webhooks(at(now), limit)]


async def test_round_trip_and_defaults(store: SqliteStore, calls: list[str]) -> None:
    d = delivery("s1", 1, 5)
    await store.enqueue_webhook(d)
    assert await store.due_webhooks(at(5), 10) == [d]
    with pytest.raises(Conflict):
        await store.enqueue_webhook(d)

    # No next_attempt_at: due when created.
    await store.enqueue_webhook(delivery("s2", 1, 0, next_attempt_at=None, created_at=at(3)))
    got = await store.due_webhooks(at(3), 10)
    assert [(x.id, x.next_attempt_at) for x in got] == [("evt_s2_1", at(3))]


async def test_only_the_lowest_pending_seq_of_a_session_is_due(
    store: SqliteStore, calls: list[str]
) -> None:
    for seq in (3, 1, 2):
        await store.enqueue_webhook(delivery("s1", seq, 0))
    assert await due_ids(store, 10) == ["evt_s1_1"]

    first = (await store.due_webhooks(at(10), 10))[0]
    await store.update_webhook(
        replace(first, state=DeliveryState.DELIVERED, attempts=1, last_status=200)
    )
    assert await due_ids(store, 10) == ["evt_s1_2"]

    second = (await store.due_webhooks(at(10), 10))[0]
    # Given up (a non-retryable answer) also unblocks the session's next event.
    await store.update_webhook(replace(second, state=DeliveryState.FAILED, last_status=410))
    assert await due_ids(store, 10) == ["evt_s1_3"]


async def test_one_per_session_across_sessions_in_due_order(
    store: SqliteStore, calls: list[str]
) -> None:
    await store.enqueue_webhook(delivery("s1", 1, 3))
    await store.enqueue_webhook(delivery("s1", 2, 0))
    await store.enqueue_webhook(delivery("s2", 1, 1))
    await store.enqueue_webhook(delivery("s2", 2, 1))
    await store.enqueue_webhook(delivery("s3", 1, 2))
    await store.enqueue_webhook(delivery("s3", 2, 50))
    assert await due_ids(store, 10) == ["evt_s2_1", "evt_s3_1", "evt_s1_1"]
    assert await due_ids(store, 10, limit=2) == ["evt_s2_1", "evt_s3_1"]
    assert await due_ids(store, 1.5) == ["evt_s2_1"]
    assert await store.due_webhooks(at(10), 0) == []


async def test_a_later_event_waits_for_its_predecessors_retry(
    store: SqliteStore, calls: list[str]
) -> None:
    # seq 1 failed once and retries at t=60; seq 2 was due at t=5.
    await store.enqueue_webhook(delivery("s1", 1, 60, attempts=1, last_status=503))
    await store.enqueue_webhook(delivery("s1", 2, 5))
    assert await due_ids(store, 10) == []
    # The dispatcher sleeps until the head is due, not until the blocked seq 2.
    assert await store.next_webhook_due() == at(60)
    assert await due_ids(store, 60) == ["evt_s1_1"]


async def test_next_webhook_due(store: SqliteStore, calls: list[str]) -> None:
    assert await store.next_webhook_due() is None
    await store.enqueue_webhook(delivery("s1", 1, 30))
    await store.enqueue_webhook(delivery("s2", 1, 20))
    assert await store.next_webhook_due() == at(20)

    d = (await store.due_webhooks(at(20), 10))[0]
    await store.update_webhook(replace(d, state=DeliveryState.DELIVERED))
    assert await store.next_webhook_due() == at(30)


async def test_update_webhook_saves_the_retry_state(store: SqliteStore, calls: list[str]) -> None:
    d = delivery("s1", 1, 0)
    await store.enqueue_webhook(d)
    retry = replace(
        d, attempts=3, next_attempt_at=at(40), last_status=None, last_error="timeout after 5 s"
    )
    await store.update_webhook(retry)
    assert await store.due_webhooks(at(39), 10) == []
    assert await store.due_webhooks(at(40), 10) == [retry]


async def test_attempts_are_listed_oldest_first(store: SqliteStore, calls: list[str]) -> None:
    await store.enqueue_webhook(delivery("s1", 1, 0))
    await store.enqueue_webhook(delivery("s1", 2, 0))
    await store.enqueue_webhook(delivery("s2", 1, 0))

    def attempt(delivery_id: str, n: int, t: float, **fields: object) -> WebhookAttempt:
        values: dict[str, object] = {
            "delivery_id": delivery_id,
            "session_id": delivery_id.split("_")[1],
            "attempt": n,
            "at": at(t),
            "url": "https://example.com/hook",
            "event_type": "call.answered",
            "status_code": 503,
            "error": None,
            "duration_ms": 12,
            "will_retry": True,
        }
        values.update(fields)
        return WebhookAttempt(**values)  # type: ignore[arg-type]

    a = [
        attempt("evt_s1_1", 1, 1),
        attempt("evt_s1_1", 2, 3, status_code=None, error="connection refused"),
        attempt("evt_s1_2", 1, 2, status_code=200, will_retry=False),
        attempt("evt_s1_1", 3, 3, status_code=200, will_retry=False),  # same time as #2
        attempt("evt_s2_1", 1, 0),
    ]
    for x in a:
        await store.add_webhook_attempt(x)
    assert await store.list_webhook_attempts("s1") == [a[0], a[2], a[1], a[3]]
    assert await store.list_webhook_attempts("s2") == [a[4]]
    assert await store.list_webhook_attempts("nobody") == []


async def test_pending_deliveries_survive_a_restart(
    db_path: Path, store: SqliteStore, calls: list[str]
) -> None:
    await store.enqueue_webhook(delivery("s1", 1, 0))
    await store.enqueue_webhook(delivery("s1", 2, 0))
    await store.close()

    reopened = reopen(store)
    await reopened.open()
    try:
        assert await due_ids(reopened, 1) == ["evt_s1_1"]
        assert await reopened.next_webhook_due() == at(0)
    finally:
        await reopened.close()
