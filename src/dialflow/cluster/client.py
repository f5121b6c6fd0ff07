"""The Redis client every node uses, with time bounds fit for an API request path."""

from __future__ import annotations

import re

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.engine import make_url


def connect_redis(url: str, *, node_id: str | None = None) -> Redis:
    """A client for ``redis://`` / ``rediss://`` / ``unix://`` URLs.

    redis-py's defaults retry a refused connection with backoff for several seconds; a
    ``POST …/calls`` waiting on the shared limits should rather fail fast (503) and let
    the client retry: one retry after 50 ms, 2 s to connect, 5 s per command.
    """
    return Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        # CLIENT SETNAME takes no spaces: shows which node a connection is in CLIENT LIST.
        client_name=re.sub(r"[^A-Za-z0-9._:-]", "-", f"dialflow-{node_id or 'node'}"),
    )


def safe_url(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<redis url>"
