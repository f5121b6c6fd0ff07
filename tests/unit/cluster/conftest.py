"""Fixtures: Redis clients on the test run's private server, each test under its own key
prefix (tests never see each other's keys)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from dialflow.cluster.client import connect_redis

from ...redis_server import redis_url  # noqa: F401  (the session fixture)


@pytest.fixture
def prefix() -> str:
    return "t" + secrets.token_hex(4)


@pytest.fixture
async def connect(redis_url: str) -> AsyncIterator[Callable[[], Redis]]:  # noqa: F811
    """Make Redis clients (one per simulated node); all closed after the test."""
    clients: list[Redis] = []

    def make() -> Redis:
        client = connect_redis(redis_url)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
