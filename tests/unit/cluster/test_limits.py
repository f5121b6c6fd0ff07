"""Shared organization limits: two limiters stand for two nodes on one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from dialflow.calls.limits import LimitExceeded, LimitsUnavailable, OrgLimiter
from dialflow.cluster.client import connect_redis
from dialflow.cluster.limits import RedisOrgLimiter


async def test_concurrency_is_counted_across_nodes(
    connect: Callable[[], Redis], prefix: str
) -> None:
    a = RedisOrgLimiter(connect(), prefix=prefix)
    b = RedisOrgLimiter(connect(), prefix=prefix)
    await a.acquire("acme", "s1", 2, 100)
    await b.acquire("acme", "s2", 2, 100)
    with pytest.raises(LimitExceeded, match="2 calls in progress") as exc:
        await a.acquire("acme", "s3", 2, 100)
    assert exc.value.retry_after == 1
    assert not await b.admit_inbound("acme", "s4", 2)
    # Another organization has its own slots.
    await b.acquire("other", "s5", 1, 100)
    assert await a.active("acme") == 2
    b.release("acme", "s2")
    await b.aclose()
    assert await a.active("acme") == 1
    assert await a.admit_inbound("acme", "s6", 2)
    await a.aclose()


async def test_acquire_is_idempotent_for_one_call(
    connect: Callable[[], Redis], prefix: str
) -> None:
    limiter = RedisOrgLimiter(connect(), prefix=prefix)
    await limiter.acquire("acme", "s1", 1, 100)
    await limiter.acquire("acme", "s1", 1, 100)  # a retry of the same call takes no slot
    assert await limiter.active("acme") == 1
    await limiter.aclose()


async def test_calls_per_second_is_one_bucket_for_all_nodes(
    connect: Callable[[], Redis], prefix: str
) -> None:
    nodes = [RedisOrgLimiter(connect(), prefix=prefix) for _ in range(3)]
    taken = 0
    refused: list[LimitExceeded] = []
    for i in range(9):
        try:
            await nodes[i % 3].acquire("acme", f"s{i}", 100, 4)
            taken += 1
        except LimitExceeded as exc:
            refused.append(exc)
    # The bucket holds one second of calls: 4, whichever node asks.
    assert taken == 4
    assert refused and all("4 calls per second" in str(e) for e in refused)
    assert all(e.retry_after == 1 for e in refused)
    await asyncio.sleep(0.3)  # ~1.2 tokens back
    await nodes[0].acquire("acme", "later", 100, 4)
    with pytest.raises(LimitExceeded):
        await nodes[1].acquire("acme", "later2", 100, 4)
    for node in nodes:
        await node.aclose()


async def test_a_changed_rate_starts_a_full_bucket(
    connect: Callable[[], Redis], prefix: str
) -> None:
    limiter = RedisOrgLimiter(connect(), prefix=prefix)
    await limiter.acquire("acme", "s1", 100, 1)
    with pytest.raises(LimitExceeded):
        await limiter.acquire("acme", "s2", 100, 1)
    await limiter.acquire("acme", "s3", 100, 2)  # as the embedded limiter does
    await limiter.aclose()


async def test_a_dead_nodes_calls_stop_counting_when_their_leases_end(
    connect: Callable[[], Redis], prefix: str
) -> None:
    dead = RedisOrgLimiter(connect(), prefix=prefix, lease_ms=300)
    alive = RedisOrgLimiter(connect(), prefix=prefix, lease_ms=300)
    await dead.acquire("acme", "d1", 2, 100)
    await alive.acquire("acme", "a1", 2, 100)
    # "dead" stops renewing (its process is gone); "alive" keeps its lease.
    assert dead._renewer is not None
    dead._renewer.cancel()
    await asyncio.sleep(0.6)
    assert await alive.active("acme") == 1
    await alive.acquire("acme", "a2", 2, 100)
    with pytest.raises(LimitExceeded):
        await alive.acquire("acme", "a3", 2, 100)
    await alive.aclose()


async def test_renew_keeps_only_held_calls(connect: Callable[[], Redis], prefix: str) -> None:
    limiter = RedisOrgLimiter(connect(), prefix=prefix, lease_ms=60_000)
    await limiter.acquire("acme", "s1", 5, 100)
    await limiter.acquire("other", "s2", 5, 100)
    limiter.release("acme", "s1")
    assert await limiter.renew() == 1
    await limiter.aclose()
    assert await limiter.active("acme") == 0
    assert await limiter.active("other") == 1


async def test_unreachable_redis_refuses_fast_instead_of_guessing() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    client = connect_redis("redis://127.0.0.1:1/0")
    limiter = RedisOrgLimiter(client)
    with pytest.raises(LimitsUnavailable, match="Redis"):
        await limiter.acquire("acme", "s1", 5, 10)
    with pytest.raises(LimitsUnavailable):
        await limiter.admit_inbound("acme", "s2", 5)
    # An API request must not hang on a dead Redis (redis-py's default retries ~3.5 s).
    assert loop.time() - started < 2.0
    await client.aclose()


async def test_embedded_limiter_has_the_same_contract() -> None:
    limiter = OrgLimiter()
    await limiter.acquire("acme", "s1", 1, 100)
    with pytest.raises(LimitExceeded):
        await limiter.acquire("acme", "s2", 1, 100)
    assert not await limiter.admit_inbound("acme", "s3", 1)
    limiter.release("acme", "s1")
    assert await limiter.admit_inbound("acme", "s3", 1)
    await limiter.aclose()
