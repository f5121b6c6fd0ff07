"""The dispatcher against the real SQLite store (dialflow.store.factory.open_store):
order and retries within a session, and a restart that reopens the database file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from dialflow.store.base import Store
from dialflow.store.factory import open_store
from dialflow.store.models import CallRecord, CallStatus, Organization
from dialflow.webhooks.delivery import WebhookDispatcher

from .receiver import Received, Receiver, Reply
from .test_delivery import NO_CA, event, secret_for


async def open_with_calls(path: Path, *sessions: str) -> Store:
    store = await open_store(None, path)
    await store.create_org(Organization(id="acme", name="Acme", webhook_secret="whsec_test"))
    for session in sessions:  # deliveries reference their call (foreign key)
        await store.insert_call(
            CallRecord(
                session_id=session,
                org_id="acme",
                flow_id=None,
                flow_version=None,
                direction="outbound",
                mode="webhook",
                to="sip:bob@example.com",
                from_=None,
                status=CallStatus.QUEUED,
                created_at=datetime.now(UTC),
            )
        )
    return store


class Attempts:
    """The metrics callback, which runs once an attempt is fully recorded: tests wait on it
    (the real store has no change notification)."""

    def __init__(self) -> None:
        self.results: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, result: str) -> None:
        self.results.append(result)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.results) < count:
                self._changed.clear()
                await self._changed.wait()


def make(store: Store, attempts: Attempts | None = None) -> WebhookDispatcher:
    return WebhookDispatcher(
        store,
        secret_for=secret_for,
        allow_private=True,
        retry_base=0.001,
        timeout=2.0,
        verify=NO_CA,
        metrics=attempts,
    )


async def test_order_and_retries_with_sqlite(tmp_path: Path) -> None:
    failures = {"evt_c_A_1": 2}

    def respond(req: Received) -> Reply:
        left = failures.get(req.event_id, 0)
        if left:
            failures[req.event_id] = left - 1
            return Reply(500)
        return Reply(200)

    store = await open_with_calls(tmp_path, "c_A", "c_B")
    try:
        async with Receiver(respond=respond) as rx:
            seen = Attempts()
            d = make(store, seen)
            await d.start()
            for seq in (1, 2, 3):
                await d.enqueue(event(rx.url(), seq))
            await d.enqueue(event(rx.url(), 1, "c_B"))
            await seen.wait(6)
            await d.stop()
        assert await store.next_webhook_due() is None
        a_ids = [r.event_id for r in rx.requests if r.event_id.startswith("evt_c_A")]
        assert a_ids == ["evt_c_A_1"] * 3 + ["evt_c_A_2", "evt_c_A_3"]
        attempts = await store.list_webhook_attempts("c_A")
        assert [(a.delivery_id, a.attempt, a.status_code, a.will_retry) for a in attempts] == [
            ("evt_c_A_1", 1, 500, True),
            ("evt_c_A_1", 2, 500, True),
            ("evt_c_A_1", 3, 200, False),
            ("evt_c_A_2", 1, 200, False),
            ("evt_c_A_3", 1, 200, False),
        ]
        assert [a.status_code for a in await store.list_webhook_attempts("c_B")] == [200]
    finally:
        await store.close()


async def test_pending_deliveries_survive_a_restart(tmp_path: Path) -> None:
    store = await open_with_calls(tmp_path, "c_A")
    async with Receiver() as rx:
        # Stored while no dispatcher runs, then the process "dies".
        idle = make(store)
        for seq in (1, 2):
            await idle.enqueue(event(rx.url(), seq))
        await store.close()

        store = await open_store(None, tmp_path)
        try:
            assert await store.next_webhook_due() is not None
            seen = Attempts()
            d = make(store, seen)
            await d.start()
            await seen.wait(2)
            await d.stop()
            assert await store.next_webhook_due() is None
            attempts = await store.list_webhook_attempts("c_A")
        finally:
            await store.close()
    assert [r.event_id for r in rx.requests] == ["evt_c_A_1", "evt_c_A_2"]
    assert [(a.delivery_id, a.attempt, a.status_code) for a in attempts] == [
        ("evt_c_A_1", 1, 200),
        ("evt_c_A_2", 1, 200),
    ]
