"""The SQLite backend itself (store/sqlite.py): settings, connections, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from dialflow.store import (
    CallEvent,
    CallStatus,
    Conflict,
    Organization,
    SqliteStore,
    StoreError,
    Trunk,
)
from dialflow.store.sql import _execute

from .conftest import MakeCall, at


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    """This module tests the SQLite backend's own machinery."""
    return sqlite_store


async def pragma(store: SqliteStore, name: str, *, writer: bool) -> object:
    def read(conn: Connection) -> object:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()

    if writer:
        return await store._run_write("pragma", read)
    return await store._run_read(read)


async def test_connection_settings(store: SqliteStore) -> None:
    assert await pragma(store, "journal_mode", writer=True) == "wal"
    assert await pragma(store, "synchronous", writer=True) == 1  # NORMAL
    assert await pragma(store, "foreign_keys", writer=True) == 1
    assert await pragma(store, "busy_timeout", writer=True) == 5000
    assert await pragma(store, "foreign_keys", writer=False) == 1
    assert await pragma(store, "query_only", writer=False) == 1
    assert await pragma(store, "journal_mode", writer=False) == "wal"


async def test_readers_cannot_write(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="readonly"):
        await store._run_read(_execute, text("DELETE FROM organizations"))
    assert await store.get_org("acme") is not None


async def test_data_survives_close_and_open(db_path: Path, make_call: MakeCall) -> None:
    store = SqliteStore(db_path)
    await store.open()
    await store.create_org(Organization("acme", "Acme", allowed_destinations=["+1*"]))
    await store.create_trunk(Trunk("main", "acme", "sip:sbc", is_default=True, created_at=at(0)))
    await store.create_flow("acme", "f", {"id": "f"})
    record = make_call("c1", status=CallStatus.RINGING)
    await store.insert_call(record)
    await store.append_events([CallEvent("c1", 1, "status", at(0), {"status": "queued"})])
    await store.close()
    assert not await store.healthy()

    again = SqliteStore(db_path)
    await again.open()
    try:
        org = await again.get_org("acme")
        assert org is not None and org.allowed_destinations == ["+1*"]
        assert await again.get_default_trunk("acme") == Trunk(
            "main", "acme", "sip:sbc", is_default=True, created_at=at(0)
        )
        flow = await again.get_flow("acme", "f")
        assert flow is not None and flow.version == 1
        assert await again.get_call("acme", "c1") == record
        assert [e.seq for e in await again.get_events("c1")] == [1]
        assert await again.fail_live_calls(at(100)) == ["c1"]
    finally:
        await again.close()


async def test_memory_database(make_call: MakeCall) -> None:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        assert repr(store) == "<SqliteStore :memory: open>"
        await store.create_org(Organization("acme", "Acme"))
        await asyncio.gather(*(store.insert_call(make_call(f"c{i}", i)) for i in range(20)))
        records, _ = await store.list_calls("acme", limit=5)
        assert [r.session_id for r in records] == ["c19", "c18", "c17", "c16", "c15"]
        with pytest.raises(Conflict):
            await store.insert_call(make_call("c1"))
        assert await store.healthy()
    finally:
        await store.close()


async def test_concurrent_writes_and_reads_do_not_lock(
    store: SqliteStore, make_call: MakeCall
) -> None:
    async def one_call(i: int) -> None:
        record = make_call(f"c{i:03d}", i)
        await store.insert_call(record)
        await store.append_events(
            [CallEvent(record.session_id, n, "status", at(i), {"n": n}) for n in range(1, 4)]
        )
        record.status = CallStatus.COMPLETED
        await store.save_call(record)
        assert await store.get_call("acme", record.session_id) is not None

    await asyncio.gather(*(one_call(i) for i in range(150)))
    assert await store.count_live_calls("acme") == 0
    records, _ = await store.list_calls("acme", status=CallStatus.COMPLETED, limit=1000)
    assert len(records) == 150


async def test_use_before_open_or_after_close_is_an_error(db_path: Path) -> None:
    store = SqliteStore(db_path)
    assert not await store.healthy()
    with pytest.raises(StoreError, match="not open"):
        await store.get_org("acme")
    with pytest.raises(StoreError, match="not open"):
        await store.create_org(Organization("acme", "Acme"))
    await store.open()
    assert await store.healthy()
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(StoreError, match="not open"):
        await store.get_org("acme")


async def test_an_unopenable_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    store = SqliteStore(tmp_path / "dir.db")
    with pytest.raises(StoreError, match="cannot open"):
        await store.open()
    assert not await store.healthy()
