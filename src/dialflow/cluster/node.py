"""This server as one node of several sharing a Redis and a database.

Joining (:func:`join`) swaps the service's in-process limiter for the shared one,
answers other nodes' hang-up requests for the calls this node runs, publishes this
node's catalog changes and applies the others', and keeps this node's liveness key.
A reaper on every node fails the live calls of nodes whose liveness key has expired
(one node does it per dead node, under a lock), as the restarted node itself would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..calls.service import CallService
from ..store.base import Store
from .bus import ClusterBus, LockTimeout
from .client import connect_redis, safe_url
from .limits import RedisOrgLimiter

log = logging.getLogger(__name__)

HANGUP_TIMEOUT = 15.0
"""A hang-up waits up to 10 s for the far end's answer to BYE/CANCEL, then the final row
is written: the asking node waits a little longer than that."""


class ClusterError(Exception):
    """This node cannot join (Redis unreachable at start)."""


@dataclass(slots=True)
class ClusterNode:
    node_id: str
    redis: Redis
    bus: ClusterBus
    limiter: RedisOrgLimiter
    prefix: str = "dialflow"
    alive_ttl_ms: int = 15_000
    reap_every: float = 5.0
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def _nodes_key(self) -> str:
        return f"{self.prefix}:nodes"

    def _alive_key(self, node_id: str) -> str:
        return f"{self.prefix}:alive:{node_id}"

    async def request_hangup(self, node_id: str, org_id: str, session_id: str) -> bool:
        """Ask ``node_id`` to hang up a call it runs; True when it did (the call's final
        row is stored by then)."""
        reply = await self.bus.request(
            node_id,
            "hangup",
            {"orgId": org_id, "sessionId": session_id},
            timeout=HANGUP_TIMEOUT,
        )
        return bool(reply and reply.get("found"))

    async def healthy(self) -> bool:
        return await self.bus.healthy()

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.limiter.aclose()
        await self.bus.aclose()
        # A clean stop ended this node's calls: nothing left for the others to reap.
        with contextlib.suppress(RedisError, OSError):
            await self.redis.srem(self._nodes_key, self.node_id)
            await self.redis.delete(self._alive_key(self.node_id))
        await self.redis.aclose()

    # -- liveness and reaping ------------------------------------------------------------
    async def _beat(self) -> None:
        await self.redis.set(self._alive_key(self.node_id), "1", px=self.alive_ttl_ms)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.alive_ttl_ms / 3000)
            try:
                await self._beat()
            except (RedisError, OSError):
                log.warning("could not renew this node's liveness in Redis", exc_info=True)

    async def dead_nodes(self) -> list[str]:
        """Known nodes whose liveness key has expired."""
        members = await self.redis.smembers(self._nodes_key)
        nodes = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        others = [n for n in nodes if n != self.node_id]
        if not others:
            return []
        alive = await self.redis.mget([self._alive_key(n) for n in others])
        return [n for n, flag in zip(others, alive, strict=True) if flag is None]

    async def reap(self, service: CallService) -> list[str]:
        """Fail the live calls of dead nodes (once per dead node, whichever node gets
        the lock); returns the session ids failed."""
        failed: list[str] = []
        for node_id in await self.dead_nodes():
            try:
                async with self.bus.lock(f"reap:{node_id}", ttl_ms=60_000, wait=0):
                    if await self.redis.exists(self._alive_key(node_id)):
                        continue  # it came back meanwhile
                    ids = await service.recover(node_id)
                    if ids:
                        log.warning(
                            "node %s is gone: %d of its live calls marked failed",
                            node_id,
                            len(ids),
                        )
                    failed.extend(ids)
                    await self.redis.srem(self._nodes_key, node_id)
            except LockTimeout:
                continue  # another node is reaping it
        return failed

    async def _reap_forever(self, service: CallService) -> None:
        while True:
            await asyncio.sleep(self.reap_every)
            try:
                await self.reap(service)
            except (RedisError, OSError):
                log.warning("could not check for dead nodes", exc_info=True)
            except Exception:
                log.exception("reaping dead nodes failed")


async def join(
    url: str,
    node_id: str,
    store: Store,
    service: CallService,
    *,
    prefix: str = "dialflow",
    alive_ttl_ms: int = 15_000,
    reap_every: float = 5.0,
) -> ClusterNode:
    """Connect to Redis and make this server one node of the cluster (see module doc)."""
    redis = connect_redis(url, node_id=node_id)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        raise ClusterError(f"cannot reach Redis at {safe_url(url)}: {exc}") from None
    limiter = RedisOrgLimiter(redis, prefix=prefix)
    bus = ClusterBus(redis, node_id, prefix=prefix)
    node = ClusterNode(node_id, redis, bus, limiter, prefix, alive_ttl_ms, reap_every)
    service.limiter = limiter
    bus.on_command("hangup", lambda body: _hangup(service, body))
    _share_catalog_cache(store, bus)
    try:
        await bus.start()
        await node._beat()
        await redis.sadd(node._nodes_key, node_id)
    except BaseException:
        await bus.aclose()
        await redis.aclose()
        raise
    loop = asyncio.get_running_loop()
    node._tasks.append(loop.create_task(node._beat_forever(), name="dialflow-node-alive"))
    node._tasks.append(loop.create_task(node._reap_forever(service), name="dialflow-node-reap"))
    log.info("node %s joined the cluster at %s", node_id, safe_url(url))
    return node


async def _hangup(service: CallService, body: dict[str, Any]) -> dict[str, Any]:
    """Another node got ``DELETE`` for a call this node runs."""
    session = service.live(str(body.get("sessionId")))
    if session is None or session.record.org_id != body.get("orgId"):
        return {"found": False}
    await service.hangup(session, by="api")
    await service.writer.flush()  # the asking node reads the final row next
    return {"found": True, "status": session.status.value}


def _share_catalog_cache(store: Store, bus: ClusterBus) -> None:
    caches = getattr(store, "catalog_cache", None)
    if caches is None:
        return
    by_kind = {"orgs": caches.orgs, "keys": caches.keys, "flows": caches.flows}
    for kind, cache in by_kind.items():
        cache.on_invalidate(
            lambda key, kind=kind: bus.publish_catalog(
                kind, None if key is None else json.dumps(key)
            )
        )

    def apply(kind: str, key: str | None) -> None:
        targets = by_kind.values() if kind not in by_kind else [by_kind[kind]]
        for cache in targets:
            if key is None or kind not in by_kind:
                cache.drop_all()
            else:
                decoded = json.loads(key)
                cache.drop(tuple(decoded) if isinstance(decoded, list) else decoded)

    bus.on_catalog(apply)
