"""SessionWriter: FIFO hand-over of webhooks that does not wait for earlier rows, and
``when_written`` (what keeps ended sessions readable until their rows are stored)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from dialflow.calls.persist import SessionWriter
from dialflow.store.models import CallEvent, CallRecord, CallStatus, WebhookDelivery

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class SlowStore:
    """write_sessions waits for ``release``; everything written is logged."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.log: list[str] = []

    async def write_sessions(self, events: list[CallEvent], records: list[CallRecord]) -> None:
        await self.release.wait()
        self.log.extend(f"event {e.session_id}/{e.seq}" for e in events)
        self.log.extend(f"save {r.session_id}" for r in records)


def record(session_id: str) -> CallRecord:
    return CallRecord(
        session_id=session_id,
        org_id="acme",
        flow_id="f",
        flow_version=1,
        direction="outbound",
        mode="poll",
        to="sip:bob@127.0.0.1",
        from_=None,
        status=CallStatus.QUEUED,
        created_at=T0,
    )


def delivery(session_id: str, seq: int) -> WebhookDelivery:
    return WebhookDelivery(
        id=f"evt_{session_id}_{seq}",
        session_id=session_id,
        org_id="acme",
        seq=seq,
        event_type="call.ringing",
        url="http://hooks.example/x",
        payload={},
    )


async def test_webhooks_go_out_in_order_without_waiting_for_earlier_rows() -> None:
    store = SlowStore()
    handed: list[str] = []

    async def enqueue(d: WebhookDelivery) -> None:
        handed.append(d.id)
        await asyncio.sleep(0)

    writer = SessionWriter(store, enqueue)  # type: ignore[arg-type]
    writer.start()
    try:
        for seq in (1, 2, 3):
            writer.events([CallEvent("c_A", seq, "status", T0, {})])
            writer.save(record("c_A"))
            writer.webhook(delivery("c_A", seq))
        for _ in range(20):
            await asyncio.sleep(0)
        assert handed == ["evt_c_A_1", "evt_c_A_2", "evt_c_A_3"]
        assert store.log == []  # the rows before them are still being written
        store.release.set()
        await writer.flush()
        assert store.log == ["event c_A/1", "event c_A/2", "event c_A/3", "save c_A"]
    finally:
        await writer.stop()


async def test_when_written_waits_for_what_was_queued_before() -> None:
    store = SlowStore()
    writer = SessionWriter(store)  # type: ignore[arg-type]
    done: list[str] = []
    writer.when_written(lambda: done.append("idle"))  # not started: at once
    writer.start()
    try:
        writer.when_written(lambda: done.append("nothing queued"))
        writer.save(record("c_A"))
        writer.when_written(lambda: done.append("after save"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert done == ["idle", "nothing queued"]
        store.release.set()
        await writer.flush()
        assert done == ["idle", "nothing queued", "after save"]
    finally:
        await writer.stop()


async def test_a_failing_enqueue_is_counted_and_the_rows_still_written() -> None:
    store = SlowStore()
    store.release.set()

    async def enqueue(d: WebhookDelivery) -> Any:
        raise RuntimeError("dispatcher down")

    writer = SessionWriter(store, enqueue)  # type: ignore[arg-type]
    writer.start()
    try:
        writer.save(record("c_A"))
        writer.webhook(delivery("c_A", 1))
        await writer.flush()
        assert writer.errors == 1 and store.log == ["save c_A"]
    finally:
        await writer.stop()


async def test_event_and_save_is_one_entry_written_in_order() -> None:
    store = SlowStore()
    store.release.set()
    writer = SessionWriter(store)  # type: ignore[arg-type]
    writer.start()
    try:
        for seq in (1, 2):
            writer.event_and_save(CallEvent("c_A", seq, "status", T0, {}), record("c_A"))
        writer.event_and_save(CallEvent("c_B", 1, "status", T0, {}), record("c_B"))
        done: list[str] = []
        writer.when_written(lambda: done.append("written"))
        await writer.flush()
        assert store.log == ["event c_A/1", "event c_A/2", "event c_B/1", "save c_A", "save c_B"]
        assert done == ["written"]
    finally:
        await writer.stop()
