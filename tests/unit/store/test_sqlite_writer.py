"""Group commit on the writer thread (store/sqlite_writer.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from dialflow.store import CallEvent, Conflict, Organization, SqliteStore, StoreError

from .conftest import MakeCall, at


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    """This module tests the SQLite backend's own machinery."""
    return sqlite_store


@asynccontextmanager
async def writer_held(store: SqliteStore) -> AsyncIterator[None]:
    """Keep the writer thread busy so that jobs submitted meanwhile queue up and run as
    one batch when the block ends."""
    assert store._writer is not None
    started, release = threading.Event(), threading.Event()

    def hold(engine: Engine) -> None:
        started.set()
        release.wait(5)

    holding = asyncio.ensure_future(store._writer.run_alone(hold))
    await asyncio.to_thread(started.wait, 5)
    try:
        yield
    finally:
        release.set()
        await holding


async def queued(n: int = 1) -> None:
    """Let the tasks just created run up to their first await (the writer's queue)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_concurrent_writes_share_one_transaction(
    store: SqliteStore, make_call: MakeCall
) -> None:
    assert store._writer is not None
    async with writer_held(store):
        tasks = [asyncio.ensure_future(store.insert_call(make_call(f"c{i}", i))) for i in range(20)]
        await queued()
        before = store._writer.batches
    await asyncio.gather(*tasks)
    assert store._writer.batches == before + 1
    assert await store.count_live_calls("acme") == 20


async def test_a_failing_job_is_rolled_back_alone(store: SqliteStore, make_call: MakeCall) -> None:
    await store.insert_call(make_call("dup", 0))
    async with writer_held(store):
        tasks = [
            asyncio.ensure_future(store.insert_call(make_call("a", 1))),
            asyncio.ensure_future(store.insert_call(make_call("dup", 2))),
            asyncio.ensure_future(store.create_flow("acme", "f", {"id": "f"})),
            asyncio.ensure_future(store.create_flow("acme", "f", {"id": "f"})),  # Conflict
            asyncio.ensure_future(store.insert_call(make_call("b", 3))),
        ]
        await queued()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "Conflict",
        "FlowVersion",
        "Conflict",
        "NoneType",
    ]
    records, _ = await store.list_calls("acme")
    assert [r.session_id for r in records] == ["b", "a", "dup"]
    dup = await store.get_call("acme", "dup")
    assert dup is not None and dup.created_at == at(0)  # the original, untouched


async def test_a_failed_commit_fails_every_job_of_the_batch(
    store: SqliteStore, make_call: MakeCall
) -> None:
    """With deferred foreign keys, a dangling event only fails at COMMIT: nothing of the
    batch may be reported as written, and nothing is."""
    await store.insert_call(make_call("c1", 0))

    def dangling(conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            text("INSERT INTO call_events VALUES ('ghost', 1, 'status', :at, '{}')"),
            {"at": "2026-03-01 12:00:00.000000"},
        )

    async with writer_held(store):
        good = asyncio.ensure_future(store.insert_call(make_call("c2", 1)))
        bad = asyncio.ensure_future(store._run_write("dangling", dangling))
        events = asyncio.ensure_future(store.append_events([CallEvent("c1", 1, "status", at(0))]))
        await queued()
    results = await asyncio.gather(good, bad, events, return_exceptions=True)
    assert all(isinstance(r, StoreError) and not isinstance(r, Conflict) for r in results)
    assert await store.get_call("acme", "c2") is None
    assert await store.get_events("c1") == []
    # The writer carries on.
    await store.insert_call(make_call("c3", 2))
    assert await store.get_call("acme", "c3") is not None


async def test_a_cancelled_caller_does_not_undo_its_write(
    store: SqliteStore, make_call: MakeCall
) -> None:
    async with writer_held(store):
        task = asyncio.ensure_future(store.insert_call(make_call("c1", 0)))
        await queued()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # Jobs run in order: once a later write is done, the cancelled one is too.
    await store.insert_call(make_call("c2", 1))
    assert await store.get_call("acme", "c1") is not None


async def test_close_finishes_the_queued_writes(db_path: Path, make_call: MakeCall) -> None:
    store = SqliteStore(db_path)
    await store.open()
    await store.create_org(Organization("acme", "Acme"))
    tasks = [asyncio.ensure_future(store.insert_call(make_call(f"c{i}", i))) for i in range(30)]
    await queued()
    await store.close()
    await asyncio.gather(*tasks)
    again = SqliteStore(db_path)
    await again.open()
    try:
        assert await again.count_live_calls("acme") == 30
    finally:
        await again.close()


async def test_repr(store: SqliteStore) -> None:
    assert repr(store._writer).startswith("<WriterThread dialflow-store-writer running batches=")
    assert repr(store).endswith("dialflow.db open>")
