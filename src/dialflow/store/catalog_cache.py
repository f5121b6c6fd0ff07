"""A short-lived in-process cache of the catalog rows read on every API request.

Every ``POST …/calls`` reads the caller's API key, its organization and the flow: three
SQLite reads on the reader pool (a thread hop each) for rows that change a few times a
day. They are kept here for ``ttl`` seconds.

Consistency, in this process: every write the store makes to these rows drops them from
the cache when the write has committed (a revoked key is refused by the very next
request), and bumps a generation counter so that a read which started before that
commit cannot put the old row back. Other processes writing the same database (a CLI, a
second server) are seen after at most ``ttl`` seconds — or at once when the servers
share a Redis: the invalidation listeners publish each change and the other nodes
:meth:`~TtlCache.drop` it (:mod:`dialflow.cluster.node`).

Only hits are cached: a miss (unknown key, deleted flow) always goes to the database,
so creating a row never waits for the TTL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger(__name__)

DEFAULT_TTL = 2.0
MAX_ENTRIES = 10_000


class TtlCache(Generic[K, V]):
    """Values with an expiry time; :meth:`put` refuses values read before a change."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._items: dict[K, tuple[float, V]] = {}
        self.generation = 0  # read it before a database read; pass it to put()
        self._listeners: list[Callable[[K | None], None]] = []

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._items[key]
            return None
        return item[1]

    def put(self, key: K, value: V, generation: int) -> None:
        """Keep ``value`` unless something was invalidated since ``generation`` was read."""
        if generation != self.generation or self.ttl <= 0:
            return
        if len(self._items) >= self.max_entries:
            self._items.clear()  # many keys or orgs: start over rather than grow
        self._items[key] = (self._clock() + self.ttl, value)

    def on_invalidate(self, listener: Callable[[K | None], None]) -> None:
        """Call ``listener(key)`` after this process changed ``key`` (None: maybe any)."""
        self._listeners.append(listener)

    def invalidate(self, key: K) -> None:
        """This process changed ``key``: drop it here and tell the listeners."""
        self.drop(key)
        self._notify(key)

    def clear(self) -> None:
        """This process changed rows it cannot name: drop everything, tell the listeners."""
        self.drop_all()
        self._notify(None)

    def drop(self, key: K) -> None:
        """Forget ``key`` (changed elsewhere) without telling anyone."""
        self.generation += 1
        self._items.pop(key, None)

    def drop_all(self) -> None:
        self.generation += 1
        self._items.clear()

    def _notify(self, key: K | None) -> None:
        for listener in self._listeners:
            try:
                listener(key)
            except Exception:
                log.exception("catalog cache listener failed")
