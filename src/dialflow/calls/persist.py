"""Writes sessions to the store in the order things happened, without blocking calls.

Session listeners run synchronously inside SIP and media callbacks; they queue work
here, and one task drains the queue in FIFO order, batching consecutive event
appends. FIFO matters: webhook deliveries are handed to the dispatcher in the order
they were queued, so a session's deliveries reach it in their seq order.

A webhook does not wait for the rows queued before it: its first attempt goes out
while they are written (the dispatcher stores the delivery itself). What a receiver
reads back right after a webhook is served from memory: the call service keeps an
ended session readable until :meth:`SessionWriter.when_written` says its last rows
are in the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..store.base import Store
from ..store.models import CallEvent, CallRecord, WebhookDelivery

log = logging.getLogger(__name__)

Op = tuple[str, Any]


class SessionWriter:
    def __init__(
        self,
        store: Store,
        enqueue_webhook: Callable[[WebhookDelivery], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._enqueue_webhook = enqueue_webhook
        self._queue: asyncio.Queue[Op] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._enqueued = 0
        self._written = 0
        self._progress = asyncio.Event()
        self._callbacks: list[tuple[int, Callable[[], None]]] = []
        self.errors = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="session-writer")

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        if self._task is None:
            return
        target = self._enqueued
        while self._written < target:
            self._progress.clear()
            await self._progress.wait()

    def when_written(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once everything queued so far is written (or failed)."""
        if self._task is None or self._written >= self._enqueued:
            callback()
            return
        self._callbacks.append((self._enqueued, callback))

    def events(self, events: list[CallEvent]) -> None:
        self._put(("events", events))

    def save(self, record: CallRecord) -> None:
        self._put(("save", record))

    def event_and_save(self, event: CallEvent, record: CallRecord) -> None:
        """``events([event])`` then ``save(record)``, as one queue entry."""
        self._put(("event+save", (event, record)))

    def webhook(self, delivery: WebhookDelivery) -> None:
        self._put(("webhook", delivery))

    def _put(self, op: Op) -> None:
        self._enqueued += 1
        self._queue.put_nowait(op)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:
                self.errors += 1
                log.exception("writing %d session operations failed", len(batch))
            self._written += len(batch)
            self._progress.set()
            if self._callbacks:
                self._run_callbacks()

    def _run_callbacks(self) -> None:
        due = [cb for target, cb in self._callbacks if target <= self._written]
        if not due:
            return
        self._callbacks = [(t, cb) for t, cb in self._callbacks if t > self._written]
        for callback in due:
            try:
                callback()
            except Exception:
                log.exception("session writer callback failed")

    async def _write(self, batch: list[Op]) -> None:
        pending_events: list[CallEvent] = []
        saves: dict[str, CallRecord] = {}
        sends: list[asyncio.Future[None]] = []
        for kind, value in batch:
            if kind == "event+save":
                pending_events.append(value[0])
                saves[value[1].session_id] = value[1]
            elif kind == "events":
                pending_events.extend(value)
            elif kind == "save":
                # The record is a live object: saving it once per batch saves the latest state.
                saves[value.session_id] = value
            elif self._enqueue_webhook is not None:
                # Tasks start in creation order, and the dispatcher decides what to send at
                # once synchronously when enqueue starts: queue order is kept.
                sends.append(asyncio.ensure_future(self._enqueue_webhook(value)))
        try:
            await self._drain(pending_events, saves)
        finally:
            failures = [
                r for r in await asyncio.gather(*sends, return_exceptions=True) if r is not None
            ]
        if failures:
            raise failures[0]

    async def _drain(self, events: list[CallEvent], saves: dict[str, CallRecord]) -> None:
        # One write job for the whole batch: each job is a thread hop and, when the
        # writer groups jobs, a savepoint of its own.
        await self._store.write_sessions(events, list(saves.values()))
