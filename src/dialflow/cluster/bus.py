"""Messages between nodes over Redis pub/sub, and locks every node respects.

Channels (``<prefix>`` is ``dialflow`` unless set):
- ``<prefix>:node:<node id>`` — commands for one node, and replies to the commands it
  sent. Used to hang up a call that another node runs (``DELETE …/calls/{id}`` may reach
  any node behind the load balancer; the call's media and SIP dialog live on one).
- ``<prefix>:catalog`` — "this organization / key / flow changed": every node drops it
  from its short catalog cache, so a revoked key is refused by the next request on any
  node instead of up to 2 s later.

Pub/sub delivers at most once and only to connected subscribers, which fits both uses:
a command whose node is gone gets no reply (PUBLISH counts 0 receivers and the caller
knows at once), and after a reconnect the catalog caches are cleared, since changes may
have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
CatalogHandler = Callable[[str, str | None], None]
"""``(kind, key)``; kind ``"*"`` means "anything may have changed"."""

# Compare-and-delete: only the holder's token releases a lock.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LockTimeout(Exception):
    """A cross-node lock was not free within the time allowed."""


class ClusterBus:
    def __init__(self, redis: Redis, node_id: str, *, prefix: str = "dialflow") -> None:
        self._redis = redis
        self.node_id = node_id
        self._prefix = prefix
        self._node_channel = self.node_channel(node_id)
        self._catalog_channel = f"{prefix}:catalog"
        self._commands: dict[str, CommandHandler] = {}
        self._catalog_handlers: list[CatalogHandler] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._unlock = redis.register_script(_UNLOCK)

    def node_channel(self, node_id: str) -> str:
        return f"{self._prefix}:node:{node_id}"

    # -- life cycle ----------------------------------------------------------------------
    async def start(self, timeout: float = 5.0) -> None:
        """Subscribe; returns once this node receives messages."""
        self._reader = asyncio.get_running_loop().create_task(
            self._read_forever(), name="dialflow-cluster-bus"
        )
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    async def healthy(self) -> bool:
        if self._reader is None or self._reader.done() or not self._subscribed.is_set():
            return False
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    # -- commands between nodes ----------------------------------------------------------
    def on_command(self, op: str, handler: CommandHandler) -> None:
        self._commands[op] = handler

    async def request(
        self, node_id: str, op: str, body: dict[str, Any], *, timeout: float
    ) -> dict[str, Any] | None:
        """Run ``op`` on another node and return its reply; None when that node is not
        connected or did not answer in time."""
        request_id = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message = {"op": op, "id": request_id, "from": self.node_id, "body": body}
        try:
            receivers = await self._redis.publish(self.node_channel(node_id), json.dumps(message))
            if not receivers:
                return None
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            log.warning("node %s did not answer %s within %.1f s", node_id, op, timeout)
            return None
        finally:
            self._pending.pop(request_id, None)

    # -- catalog changes -----------------------------------------------------------------
    def on_catalog(self, handler: CatalogHandler) -> None:
        self._catalog_handlers.append(handler)

    def publish_catalog(self, kind: str, key: str | None) -> None:
        """Tell the other nodes (not this one: its caches are already up to date)."""
        message = json.dumps({"from": self.node_id, "kind": kind, "key": key})
        self._spawn(self._publish(self._catalog_channel, message))

    # -- locks -----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lock(
        self, name: str, *, ttl_ms: int = 30_000, wait: float = 10.0
    ) -> AsyncIterator[None]:
        """Hold ``<prefix>:lock:<name>`` on every node (SET NX PX; released by token).

        ``ttl_ms`` bounds how long a crashed holder blocks others; keep the work inside
        shorter than that."""
        key = f"{self._prefix}:lock:{name}"
        token = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        delay = 0.005
        while not await self._redis.set(key, token, nx=True, px=ttl_ms):
            if loop.time() >= deadline:
                raise LockTimeout(f"lock {name!r} still held after {wait:g} s")
            await asyncio.sleep(delay)
            delay = min(0.1, delay * 2)
        try:
            yield
        finally:
            try:
                await self._unlock(keys=[key], args=[token])
            except (RedisError, OSError):
                log.warning("could not release lock %s (it expires on its own)", name)

    # -- inside ----------------------------------------------------------------------------
    async def _read_forever(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._node_channel, self._catalog_channel)
                delay = 0.1
                async for message in pubsub.listen():
                    kind = message.get("type")
                    if kind == "message":
                        self._dispatch(message["channel"], message["data"])
                    elif kind == "subscribe" and _text(message["channel"]) == self._catalog_channel:
                        self._on_subscribed()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                log.warning("Redis subscription lost; retrying in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_subscribed(self) -> None:
        """The catalog channel is (again) subscribed. redis-py reconnects and subscribes
        again by itself after a dropped connection; only this confirmation tells us that
        messages may have been missed meanwhile."""
        if self._subscribed.is_set():
            log.warning("Redis subscription re-established: clearing the catalog caches")
            self._notify_catalog("*", None)
        self._subscribed.set()

    def _dispatch(self, channel: bytes | str, data: bytes | str) -> None:
        channel = _text(channel)
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("ignored a malformed message on %s", channel)
            return
        if not isinstance(message, dict):
            return
        if channel == self._catalog_channel:
            if message.get("from") != self.node_id:
                self._notify_catalog(str(message.get("kind")), message.get("key"))
            return
        op = message.get("op")
        if op == "reply":
            future = self._pending.get(str(message.get("id")))
            if future is not None and not future.done():
                future.set_result(message.get("body") or {})
            return
        handler = self._commands.get(str(op))
        if handler is None:
            log.warning("ignored unknown command %r from node %s", op, message.get("from"))
            return
        self._spawn(self._run_command(handler, message))

    async def _run_command(self, handler: CommandHandler, message: dict[str, Any]) -> None:
        try:
            body = await handler(message.get("body") or {})
        except Exception as exc:
            log.exception("command %s failed", message.get("op"))
            body = {"error": str(exc) or type(exc).__name__}
        sender = message.get("from")
        if isinstance(sender, str):
            reply = {"op": "reply", "id": message.get("id"), "from": self.node_id, "body": body}
            await self._publish(self.node_channel(sender), json.dumps(reply))

    def _notify_catalog(self, kind: str, key: str | None) -> None:
        for handler in self._catalog_handlers:
            try:
                handler(kind, key)
            except Exception:
                log.exception("catalog change handler failed")

    async def _publish(self, channel: str, message: str) -> None:
        try:
            await self._redis.publish(channel, message)
        except (RedisError, OSError):
            log.warning("could not publish on %s", channel, exc_info=True)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
