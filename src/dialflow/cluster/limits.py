"""Per-organization limits shared by every node, in Redis.

Concurrency: one sorted set per organization, ``<prefix>:active:<org>``, member = the
call's session id, score = when its lease ends (ms, Redis clock). A node holds a lease
for each of its live calls and renews them every ``lease_ms / 3``; a call ends with
ZREM. A node that dies stops renewing, so its calls stop counting ``lease_ms`` later
(default 30 s) instead of holding the organization's slots for ever. Counting expired
leases out inside the acquiring script keeps the check and the insert atomic.

Calls per second: the embedded limiter's token bucket (one second of calls, at least
one), kept in a hash ``<prefix>:cps:<org>`` and updated by the same script on the Redis
server's clock, so that nodes with skewed clocks share one rate.

Every decision is one round trip (EVALSHA of a Lua script). When Redis cannot be
reached the limiter raises :class:`~dialflow.calls.limits.LimitsUnavailable`: the call
is refused with 503 rather than placed over a limit nobody checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..calls.limits import LimitExceeded, LimitsUnavailable

log = logging.getLogger(__name__)

DEFAULT_LEASE_MS = 30_000

# KEYS: active zset, cps hash. ARGV: session, max concurrent, rate (text), lease ms,
# "1" to check the rate. Returns {0, 0} (taken), {1, 0} (too many calls in progress) or
# {2, wait_ms} (over the rate).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {0, 0} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {1, 0} end
if ARGV[5] == '1' then
  local rate = tonumber(ARGV[3])
  local capacity = math.max(1, rate)
  local b = redis.call('HMGET', KEYS[2], 'tokens', 'ts', 'rate')
  local tokens = tonumber(b[1])
  local ts = tonumber(b[2])
  if tokens == nil or ts == nil or b[3] ~= ARGV[3] then
    tokens = capacity
    ts = now
  end
  tokens = math.min(capacity, tokens + math.max(0, now - ts) / 1000 * rate)
  if tokens < 1 then
    if rate <= 0 then return {2, 60000} end
    return {2, math.ceil((1 - tokens) / rate * 1000)}
  end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'ts', now, 'rate', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], 120000)
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease * 2)
return {0, 0}
"""

# KEYS: one active zset per held call; ARGV: lease ms, then the session ids in KEYS order.
# Only renews members that are still there (XX): a slot given back stays given back.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease * 2)
end
return #KEYS
"""

_RENEW_BATCH = 500


class RedisOrgLimiter:
    """The :class:`~dialflow.calls.limits.Limiter` for several nodes sharing one Redis."""

    def __init__(
        self, redis: Redis, *, prefix: str = "dialflow", lease_ms: int = DEFAULT_LEASE_MS
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.lease_ms = lease_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._held: dict[str, str] = {}  # session id → org id, this node's calls
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None

    def _active_key(self, org_id: str) -> str:
        return f"{self._prefix}:active:{org_id}"

    def _cps_key(self, org_id: str) -> str:
        return f"{self._prefix}:cps:{org_id}"

    # -- the Limiter protocol ----------------------------------------------------------
    async def acquire(
        self, org_id: str, session_id: str, max_concurrent: int, calls_per_second: float
    ) -> None:
        code, wait_ms = await self._take(org_id, session_id, max_concurrent, calls_per_second)
        if code == 1:
            raise LimitExceeded(f"the organization has {max_concurrent} calls in progress", 1)
        if code == 2:
            raise LimitExceeded(
                f"over the organization's limit of {calls_per_second:g} calls per second",
                max(1, -(-wait_ms // 1000)),
            )

    async def admit_inbound(self, org_id: str, session_id: str, max_concurrent: int) -> bool:
        code, _ = await self._take(org_id, session_id, max_concurrent, None)
        return code == 0

    def release(self, org_id: str, session_id: str) -> None:
        if self._held.pop(session_id, None) is None:
            return
        self._spawn(self._zrem(org_id, session_id))

    async def aclose(self) -> None:
        """Stop renewing and wait for pending releases (this node's slots go back now,
        not when their leases run out)."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # -- inside ------------------------------------------------------------------------
    async def _take(
        self, org_id: str, session_id: str, max_concurrent: int, rate: float | None
    ) -> tuple[int, int]:
        try:
            code, wait_ms = await self._acquire(
                keys=[self._active_key(org_id), self._cps_key(org_id)],
                args=[
                    session_id,
                    max_concurrent,
                    repr(float(rate or 0.0)),
                    self.lease_ms,
                    "0" if rate is None else "1",
                ],
            )
        except (RedisError, OSError) as exc:
            raise LimitsUnavailable(f"Redis: {exc}") from exc
        if int(code) == 0:
            self._held[session_id] = org_id
            self._ensure_renewer()
        return int(code), int(wait_ms)

    async def _zrem(self, org_id: str, session_id: str) -> None:
        try:
            await self._redis.zrem(self._active_key(org_id), session_id)
        except (RedisError, OSError):
            # The lease runs out on its own; until then the slot stays taken.
            log.warning("could not release call slot %s in Redis", session_id, exc_info=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew_forever(), name="dialflow-limits-renew"
            )

    async def _renew_forever(self) -> None:
        interval = self.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
            except (RedisError, OSError):
                log.warning("could not renew call slots in Redis", exc_info=True)

    async def renew(self) -> int:
        """Extend the leases of this node's live calls; returns how many were renewed."""
        held = list(self._held.items())
        for start in range(0, len(held), _RENEW_BATCH):
            batch = held[start : start + _RENEW_BATCH]
            await self._renew(
                keys=[self._active_key(org) for _, org in batch],
                args=[self.lease_ms, *(sid for sid, _ in batch)],
            )
        return len(held)

    async def active(self, org_id: str) -> int:
        """Calls counted against the organization now, on every node."""
        key = self._active_key(org_id)
        now_s, now_us = await self._redis.time()
        return int(await self._redis.zcount(key, f"({now_s * 1000 + now_us // 1000}", "+inf"))
