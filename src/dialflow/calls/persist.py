"""Writes sessions to the store in the order things happened, without blocking calls.

Session listeners run synchronously inside SIP and media callbacks; they queue work
here, and one task drains the queue in FIFO order, batching consecutive event
appends. FIFO matters: a webhook delivery is enqueued after the events before it, so
a session's deliveries reach the store (and the dispatcher) in their seq order.
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

    def events(self, events: list[CallEvent]) -> None:
        self._put(("events", events))

    def save(self, record: CallRecord) -> None:
        self._put(("save", record))

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

    async def _write(self, batch: list[Op]) -> None:
        pending_events: list[CallEvent] = []
        saves: dict[str, CallRecord] = {}
        for kind, value in batch:
            if kind == "events":
                pending_events.extend(value)
                continue
            if kind == "save":
                # The record is a live object: saving it once per batch saves the latest state.
                saves[value.session_id] = value
                continue
            # A webhook: everything before it must be stored first.
            await self._drain(pending_events, saves)
            if self._enqueue_webhook is not None:
                await self._enqueue_webhook(value)
        await self._drain(pending_events, saves)

    async def _drain(self, events: list[CallEvent], saves: dict[str, CallRecord]) -> None:
        if events:
            await self._store.append_events(list(events))
            events.clear()
        for record in saves.values():
            await self._store.save_call(record)
        saves.clear()
