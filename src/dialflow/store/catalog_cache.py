"""A short-lived in-process cache of the catalog rows read on every API request.

Every ``POST …/calls`` reads the caller's API key, its organization and the flow: three
SQLite reads on the reader pool (a thread hop each) for rows that change a few times a
day. They are kept here for ``ttl`` seconds.

Consistency, in this process: every write the store makes to these rows drops them from
the cache when the write has committed (a revoked key is refused by the very next
request), and bumps a generation counter so that a read which started before that
commit cannot put the old row back. Other processes writing the same database (a CLI, a
second server) are seen after at most ``ttl`` seconds.

Only hits are cached: a miss (unknown key, deleted flow) always goes to the database,
so creating a row never waits for the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

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

    def invalidate(self, key: K) -> None:
        self.generation += 1
        self._items.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._items.clear()
