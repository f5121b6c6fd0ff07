"""The SQLite writer: one thread that owns the only write connection, with group commit.

SQLite allows one writer at a time, and its calls block. Rather than hopping to a
driver thread for every DBAPI call (aiosqlite: cursor, execute, fetch, close, commit —
about seven hops for a one-row transaction, which capped us near 500 writes/s), a
store call is one job: the event loop hands a query function to this thread and
awaits one future.

Group commit: when jobs queue up while a transaction runs (the busy case: hundreds of
calls writing at once), the thread runs up to ``max_batch`` of them in one
transaction, each inside its own SAVEPOINT, so a job that fails (a duplicate key) is
rolled back alone and reported to its caller alone, while the rest share one BEGIN
and one COMMIT. A job's future resolves only after that COMMIT (or its failure).

A job whose caller was cancelled still runs (it may already be running): as with any
database call, cancelling the wait does not roll the write back.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from .base import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[Connection], T] | None  # in a transaction (batched)
    raw: Callable[[Engine], T] | None  # alone, outside any transaction (migrations)
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


_Outcome = tuple[_Job[Any], Any, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    """On the event loop: hand each job its result (unless its caller gave up)."""
    for job, value, error in outcomes:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)


def _end_transaction(conn: Connection) -> None:
    """Make sure no transaction is left open after a failure.

    A COMMIT that fails (a deferred foreign key, SQLITE_BUSY, a full disk) leaves
    SQLite's transaction open while SQLAlchemy considers it over; the next BEGIN would
    fail with "cannot start a transaction within a transaction".
    """
    raw = conn.connection.dbapi_connection
    try:
        if raw is not None and getattr(raw, "in_transaction", False):
            raw.rollback()
    except Exception:
        log.exception("rollback after a failed transaction failed; reconnecting")
        conn.invalidate()


class WriterThread:
    """Runs write jobs one transaction at a time on one connection (see module doc)."""

    def __init__(self, engine: Engine, *, name: str = "dialflow-store-writer") -> None:
        self.engine = engine
        self.max_batch = 128
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._dead: BaseException | None = None
        self.batches = 0  # transactions run (for tests and metrics)

    def __repr__(self) -> str:
        state = "dead" if self._dead else "running" if self._thread.is_alive() else "idle"
        return f"<WriterThread {self._thread.name} {state} batches={self.batches}>"

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive() and self._dead is None

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` inside a write transaction; its result once committed."""
        return await self._put(fn, None)

    async def run_alone(self, fn: Callable[[Engine], T]) -> T:
        """``fn(engine)`` on the writer thread, between transactions (for migrations,
        which must change connection settings outside any transaction)."""
        return await self._put(None, fn)

    async def stop(self) -> None:
        """Finish the queued jobs, close the connection, end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
        else:
            self.engine.dispose()

    async def _put(
        self, fn: Callable[[Connection], T] | None, raw: Callable[[Engine], T] | None
    ) -> T:
        if self._dead is not None:
            raise StoreError(f"the database writer stopped: {self._dead!r}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, raw, future, loop))
        return await future

    # -- on the writer thread ----------------------------------------------------------
    def _main(self) -> None:
        pending: list[_Job[Any]] = []
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                pending = [job]
                stopping = False
                while len(pending) < self.max_batch and pending[-1].raw is None:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stopping = True
                        break
                    pending.append(nxt)
                self._run(pending)
                pending = []
                if stopping:
                    return
        except BaseException as exc:  # pragma: no cover - a bug, not a database error
            log.exception("database writer thread died")
            self._dead = exc
            self._fail([*pending, *self._drain()], StoreError("the database writer stopped"))
            raise
        finally:
            self.engine.dispose()

    def _drain(self) -> list[_Job[Any]]:
        jobs: list[_Job[Any]] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return jobs
            if job is not None:
                jobs.append(job)

    def _run(self, jobs: list[_Job[Any]]) -> None:
        # A raw job can only be last in a batch (see _main): run the others first.
        raw = jobs.pop() if jobs[-1].raw is not None else None
        outcomes: list[_Outcome] = self._transaction(jobs) if jobs else []
        if raw is not None:
            assert raw.raw is not None
            try:
                outcomes.append((raw, raw.raw(self.engine), None))
            except Exception as exc:
                outcomes.append((raw, None, exc))
        self._deliver(outcomes)

    def _transaction(self, jobs: list[_Job[Any]]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        self.batches += 1
        with self.engine.connect() as conn:
            try:
                with conn.begin():
                    if len(jobs) == 1:
                        # Alone: no savepoint needed, a failure rolls the transaction back.
                        job = jobs[0]
                        assert job.fn is not None
                        outcomes.append((job, job.fn(conn), None))
                    else:
                        for job in jobs:
                            assert job.fn is not None
                            try:
                                with conn.begin_nested():
                                    value = job.fn(conn)
                            except Exception as exc:
                                outcomes.append((job, None, exc))
                            else:
                                outcomes.append((job, value, None))
            except Exception as exc:
                _end_transaction(conn)
                # BEGIN, COMMIT or a lone job failed: every job that had no error of
                # its own gets this one (nothing of the transaction was committed).
                own = {id(job): error for job, _, error in outcomes if error is not None}
                return [(job, None, own.get(id(job), exc)) for job in jobs]
        return outcomes

    @staticmethod
    def _deliver(outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    def _fail(self, jobs: list[_Job[Any]], error: BaseException) -> None:
        self._deliver([(job, None, error) for job in jobs])
