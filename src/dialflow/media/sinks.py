"""Subscribers of what a media leg receives: decoded audio frames and DTMF digits.

Two shapes for each: a callback run synchronously on the media clock's task (frames,
and DTMF digits as soon as the clock has read their packet), and an async iterator
backed by a bounded queue that drops the oldest item when its consumer falls behind,
so a slow consumer never stalls the clock or grows memory.

A callback that raises is logged once and unsubscribed: one broken consumer must not
take the clock (and every other call) down with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from dialflow.rtp.dtmf import DtmfDigit

__all__ = [
    "AudioFrame",
    "DropOldestQueue",
    "DtmfCallback",
    "FrameCallback",
    "Subscribers",
    "Subscription",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
FrameCallback = Callable[[npt.NDArray[np.int16], float], None]
DtmfCallback = Callable[[DtmfDigit], None]


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One received 20 ms frame: 160 int16 samples and the clock time of its tick."""

    samples: npt.NDArray[np.int16]
    t: float


class Subscription:
    """Handle returned by a subscribe call; ``close()`` unsubscribes (idempotent)."""

    __slots__ = ("_callback", "_owner")

    def __init__(self, owner: Subscribers, callback: Callable[..., None]) -> None:
        self._owner: Subscribers | None = owner
        self._callback = callback

    def close(self) -> None:
        """Stop receiving."""
        if self._owner is not None:
            self._owner.discard(self._callback)
            self._owner = None


class Subscribers:
    """An ordered set of callbacks taking the same arguments."""

    __slots__ = ("_name", "callbacks")

    def __init__(self, name: str) -> None:
        self._name = name
        #: The subscribed callbacks, in order (read-only for callers; a plain list so
        #: the media clock can test for subscribers without a method call).
        self.callbacks: list[Callable[..., None]] = []

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def add(self, callback: Callable[..., None]) -> Subscription:
        """Subscribe ``callback``; returns the handle that unsubscribes it."""
        self.callbacks.append(callback)
        return Subscription(self, callback)

    def discard(self, callback: Callable[..., None]) -> None:
        """Unsubscribe ``callback`` if present."""
        if callback in self.callbacks:
            self.callbacks.remove(callback)

    def clear(self) -> None:
        """Unsubscribe everyone."""
        self.callbacks.clear()

    def publish(self, *args: object) -> None:
        """Call every subscriber; one that raises is logged and removed."""
        callbacks = self.callbacks
        # A callback may unsubscribe itself: iterate a copy when there are several.
        for callback in tuple(callbacks) if len(callbacks) > 1 else callbacks:
            try:
                callback(*args)
            except Exception:
                self.failed(callback)

    def failed(self, callback: Callable[..., None]) -> None:
        """``callback`` raised (call from its ``except`` block): log it, unsubscribe it.

        For callers that call ``callbacks`` themselves on a hot path (see ``publish``).
        """
        log.exception("%s subscriber %r failed; unsubscribed", self._name, callback)
        self.discard(callback)


class DropOldestQueue(Generic[T]):
    """A bounded async iterator: ``put_nowait`` never blocks and drops the oldest item.

    ``async for item in queue`` ends after ``close()`` once the queue is drained.
    Use it as an async context manager (or call ``close``) to unsubscribe it.
    """

    __slots__ = ("_closed", "_items", "_on_close", "_waiter", "dropped")

    def __init__(self, maxsize: int, on_close: Callable[[], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._items: deque[T] = deque(maxlen=maxsize)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._on_close = on_close
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once ``close`` was called (items already queued can still be read)."""
        return self._closed

    def put_nowait(self, item: T) -> None:
        """Append ``item``; if full, the oldest item is discarded and counted in ``dropped``."""
        if self._closed:
            return
        items = self._items
        if len(items) == items.maxlen:
            self.dropped += 1
        items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def get_nowait(self) -> T | None:
        """The oldest item, or None if empty."""
        return self._items.popleft() if self._items else None

    def close(self) -> None:
        """End iteration (after the queued items) and unsubscribe."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def __aiter__(self) -> DropOldestQueue[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.popleft()

    async def __aenter__(self) -> DropOldestQueue[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
