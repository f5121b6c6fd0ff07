"""Per-organization concurrency and calls-per-second limits (429 with Retry-After).

:class:`OrgLimiter` is the embedded one (this process's calls); with
``DIALFLOW_REDIS_URL`` the service uses :class:`dialflow.cluster.limits.RedisOrgLimiter`,
which counts every node's calls. Both follow :class:`Limiter`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol


class LimitExceeded(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LimitsUnavailable(Exception):
    """The shared limits cannot be checked (Redis unreachable): refuse rather than guess."""


class Limiter(Protocol):
    async def acquire(
        self, org_id: str, session_id: str, max_concurrent: int, calls_per_second: float
    ) -> None:
        """Take a slot for a new outbound call or raise :class:`LimitExceeded`."""

    async def admit_inbound(self, org_id: str, session_id: str, max_concurrent: int) -> bool:
        """Take a slot for an inbound call (concurrency only); False when full."""

    def release(self, org_id: str, session_id: str) -> None:
        """Give the call's slot back (never raises)."""

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Bucket:
    rate: float
    tokens: float
    updated: float


@dataclass(slots=True)
class OrgLimiter:
    """In-process limits (embedded mode): active calls counted here, CPS by token bucket.

    The bucket holds one second of calls (``callsPerSecond`` tokens, at least one), so a
    burst up to the rate is allowed and the long-run rate never exceeds it.
    """

    _active: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    async def acquire(
        self, org_id: str, session_id: str, max_concurrent: int, calls_per_second: float
    ) -> None:
        """Take a slot for a new call or raise :class:`LimitExceeded`."""
        now = time.monotonic()
        if self._active.get(org_id, 0) >= max_concurrent:
            raise LimitExceeded(f"the organization has {max_concurrent} calls in progress", 1)
        capacity = max(1.0, calls_per_second)
        bucket = self._buckets.get(org_id)
        if bucket is None or bucket.rate != calls_per_second:
            bucket = _Bucket(calls_per_second, capacity, now)
            self._buckets[org_id] = bucket
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * calls_per_second)
        bucket.updated = now
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) / calls_per_second if calls_per_second > 0 else 60
            raise LimitExceeded(
                f"over the organization's limit of {calls_per_second:g} calls per second",
                max(1, math.ceil(wait)),
            )
        bucket.tokens -= 1.0
        self._active[org_id] = self._active.get(org_id, 0) + 1

    async def admit_inbound(self, org_id: str, session_id: str, max_concurrent: int) -> bool:
        """Inbound calls count against concurrency (not CPS: we don't choose their rate)."""
        if self._active.get(org_id, 0) >= max_concurrent:
            return False
        self._active[org_id] = self._active.get(org_id, 0) + 1
        return True

    def release(self, org_id: str, session_id: str) -> None:
        count = self._active.get(org_id, 0) - 1
        if count > 0:
            self._active[org_id] = count
        else:
            self._active.pop(org_id, None)

    def active(self, org_id: str) -> int:
        return self._active.get(org_id, 0)

    async def aclose(self) -> None:
        return None
