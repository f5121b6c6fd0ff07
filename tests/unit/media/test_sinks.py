"""Subscribers and the drop-oldest async queue."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dialflow.media.sinks import DropOldestQueue, Subscribers


def test_publish_calls_in_order_and_subscription_closes() -> None:
    subs = Subscribers("test")
    got: list[tuple[str, int]] = []
    s1 = subs.add(lambda x: got.append(("a", x)))
    subs.add(lambda x: got.append(("b", x)))
    subs.publish(1)
    s1.close()
    s1.close()  # idempotent
    subs.publish(2)
    assert got == [("a", 1), ("b", 1), ("b", 2)]
    assert len(subs) == 1 and subs


def test_failing_subscriber_is_logged_once_and_removed(caplog: pytest.LogCaptureFixture) -> None:
    subs = Subscribers("frame")
    got: list[int] = []

    def broken(x: int) -> None:
        raise ValueError("bad consumer")

    subs.add(broken)
    subs.add(got.append)
    with caplog.at_level(logging.ERROR):
        subs.publish(1)
        subs.publish(2)
    assert got == [1, 2]
    assert len(subs) == 1
    assert sum("unsubscribed" in r.message for r in caplog.records) == 1


def test_subscriber_may_unsubscribe_itself() -> None:
    subs = Subscribers("x")
    got: list[int] = []
    handle = None

    def once(x: int) -> None:
        got.append(x)
        assert handle is not None
        handle.close()

    handle = subs.add(once)
    subs.publish(1)
    subs.publish(2)
    assert got == [1] and not subs


def test_queue_drops_oldest_when_full() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    for i in range(5):
        q.put_nowait(i)
    assert q.dropped == 2 and len(q) == 3
    assert [q.get_nowait() for _ in range(4)] == [2, 3, 4, None]
    with pytest.raises(ValueError):
        DropOldestQueue(0)


async def test_queue_async_iteration_wakes_and_ends_on_close() -> None:
    closed: list[bool] = []
    q: DropOldestQueue[int] = DropOldestQueue(10, on_close=lambda: closed.append(True))
    received: list[int] = []

    async def consume() -> None:
        async for item in q:
            received.append(item)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    q.put_nowait(1)
    q.put_nowait(2)
    await asyncio.sleep(0)
    assert received == [1, 2]
    q.put_nowait(3)
    q.close()
    await asyncio.wait_for(task, 1)
    assert received == [1, 2, 3] and closed == [True]
    q.put_nowait(4)  # ignored once closed
    assert len(q) == 0 and q.closed


async def test_queue_context_manager_closes() -> None:
    q: DropOldestQueue[str] = DropOldestQueue(2)
    async with q as it:
        it.put_nowait("x")
        assert await it.__anext__() == "x"
    assert q.closed
    with pytest.raises(StopAsyncIteration):
        await q.__anext__()
