"""Messages between nodes: commands with replies, catalog changes, locks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from dialflow.cluster.bus import ClusterBus, LockTimeout


@pytest.fixture
async def nodes(connect: Callable[[], Redis], prefix: str) -> AsyncIterator[Callable[[str], Any]]:
    started: list[ClusterBus] = []

    async def start(node_id: str) -> ClusterBus:
        bus = ClusterBus(connect(), node_id, prefix=prefix)
        await bus.start()
        started.append(bus)
        return bus

    yield start
    for bus in started:
        await bus.aclose()


async def test_a_command_runs_on_its_node_and_replies(nodes: Callable[[str], Any]) -> None:
    a: ClusterBus = await nodes("a")
    b: ClusterBus = await nodes("b")
    seen: list[dict[str, Any]] = []

    async def hangup(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        return {"ended": True, "node": "b"}

    b.on_command("hangup", hangup)
    reply = await a.request("b", "hangup", {"sessionId": "s1"}, timeout=5)
    assert reply == {"ended": True, "node": "b"}
    assert seen == [{"sessionId": "s1"}]
    assert await a.healthy() and await b.healthy()


async def test_a_node_that_is_gone_answers_none_at_once(nodes: Callable[[str], Any]) -> None:
    a: ClusterBus = await nodes("a")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await a.request("nobody", "hangup", {}, timeout=5) is None
    assert loop.time() - started < 1.0  # no subscriber: no waiting for the timeout


async def test_a_failing_or_unknown_command_does_not_break_the_node(
    nodes: Callable[[str], Any],
) -> None:
    a: ClusterBus = await nodes("a")
    b: ClusterBus = await nodes("b")

    async def broken(body: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    b.on_command("broken", broken)
    assert await a.request("b", "broken", {}, timeout=5) == {"error": "boom"}
    assert await a.request("b", "unknown", {}, timeout=0.3) is None
    b.on_command("ok", _echo)
    assert await a.request("b", "ok", {"x": 1}, timeout=5) == {"x": 1}


async def _echo(body: dict[str, Any]) -> dict[str, Any]:
    return body


async def test_catalog_changes_reach_the_other_nodes_only(nodes: Callable[[str], Any]) -> None:
    a: ClusterBus = await nodes("a")
    b: ClusterBus = await nodes("b")
    got_a: list[tuple[str, str | None]] = []
    got_b: list[tuple[str, str | None]] = []
    changed = asyncio.Event()
    a.on_catalog(lambda kind, key: got_a.append((kind, key)))

    def on_b(kind: str, key: str | None) -> None:
        got_b.append((kind, key))
        changed.set()

    b.on_catalog(on_b)
    a.publish_catalog("org", "acme")
    await asyncio.wait_for(changed.wait(), 5)
    assert got_b == [("org", "acme")]
    assert got_a == []


async def test_malformed_messages_are_ignored(
    nodes: Callable[[str], Any], connect: Callable[[], Redis], prefix: str
) -> None:
    b: ClusterBus = await nodes("b")
    b.on_command("ok", _echo)
    raw = connect()
    await raw.publish(f"{prefix}:node:b", b"not json")
    await raw.publish(f"{prefix}:node:b", b"[1, 2]")
    a: ClusterBus = await nodes("a")
    assert await a.request("b", "ok", {"still": "serving"}, timeout=5) == {"still": "serving"}


async def test_a_lock_is_held_across_nodes(nodes: Callable[[str], Any]) -> None:
    a: ClusterBus = await nodes("a")
    b: ClusterBus = await nodes("b")
    order: list[str] = []

    async def hold(bus: ClusterBus, name: str) -> None:
        async with bus.lock("idem:acme:k1", wait=5):
            order.append(f"{name} in")
            await asyncio.sleep(0.1)
            order.append(f"{name} out")

    await asyncio.gather(hold(a, "a"), hold(b, "b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    async with a.lock("busy"):
        with pytest.raises(LockTimeout):
            async with b.lock("busy", wait=0.2):
                pass
    # Released: the other node gets it now.
    async with b.lock("busy", wait=0.2):
        pass


async def test_an_expired_lock_of_a_crashed_holder_is_taken_over(
    nodes: Callable[[str], Any], connect: Callable[[], Redis], prefix: str
) -> None:
    b: ClusterBus = await nodes("b")
    await connect().set(f"{prefix}:lock:stale", "crashed-holder", px=200)
    async with b.lock("stale", wait=2):
        pass


async def test_after_a_lost_subscription_caches_are_cleared_and_commands_work(
    nodes: Callable[[str], Any], connect: Callable[[], Redis]
) -> None:
    a: ClusterBus = await nodes("a")
    b: ClusterBus = await nodes("b")
    b.on_command("ok", _echo)
    cleared = asyncio.Event()
    b.on_catalog(lambda kind, key: cleared.set() if kind == "*" else None)
    # Redis drops every subscriber connection (a restart, a failover, a proxy timeout).
    await connect().client_kill_filter(_type="pubsub")
    await asyncio.wait_for(cleared.wait(), 10)
    for _ in range(50):  # a's subscription comes back too
        if await a.request("b", "ok", {"n": 1}, timeout=1) == {"n": 1}:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("no reply after the subscriptions came back")
