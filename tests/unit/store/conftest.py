"""Fixtures: a store per test on each backend — a fresh SQLite file (copied from a
template migrated once per session, so tests do not pay for the migration each time),
and an emptied PostgreSQL database (``tests/pg_server.py``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dialflow.store import CallRecord, CallStatus, Organization, SqliteStore
from dialflow.store.postgres import PostgresStore

from ...pg_server import postgres_database, postgres_server, reset_database  # noqa: F401

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A fixed instant T0 + seconds (tests never read the clock for stored times)."""
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "dialflow.db"

    async def migrate() -> None:
        store = SqliteStore(path)
        await store.open()
        await store.close()

    # May be set up from inside a running test loop (the store fixture asks for it).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    return path


@pytest.fixture
def db_path(tmp_path: Path, template_db: Path) -> Path:
    path = tmp_path / "dialflow.db"
    shutil.copyfile(template_db, path)
    return path


async def _with_orgs(store: SqliteStore | PostgresStore) -> None:
    await store.open()
    await store.create_org(Organization("acme", "Acme"))
    await store.create_org(Organization("other", "Other"))


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(db_path)
    await _with_orgs(s)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[Any]:
    """Every store test runs on both backends (PostgreSQL: a private server, one
    database emptied before each test). SQLite-only modules use ``sqlite_store``."""
    s: SqliteStore | PostgresStore
    if request.param == "sqlite":
        s = SqliteStore(db_path)
    else:
        # A sync session fixture: safe to ask for from inside the running loop.
        database_url = request.getfixturevalue("postgres_database")
        # Emptied before rather than after: a test that failed half-way cannot leak rows.
        await reset_database(database_url)
        s = PostgresStore(database_url)
    try:
        await _with_orgs(s)
        yield s
    finally:
        await s.close()


def reopen(store: Any) -> Any:
    """A second, unopened store on the same database (a restarted server)."""
    if isinstance(store, PostgresStore):
        return PostgresStore(store.url.render_as_string(hide_password=False))
    return SqliteStore(store.path)


MakeCall = Callable[..., CallRecord]


@pytest.fixture
def make_call() -> MakeCall:
    def make(session_id: str, created: float = 0.0, **fields: Any) -> CallRecord:
        values: dict[str, Any] = {
            "session_id": session_id,
            "org_id": "acme",
            "flow_id": "reminder",
            "flow_version": 1,
            "direction": "outbound",
            "mode": "poll",
            "to": "sip:bob@127.0.0.1:5070",
            "from_": "+15550001111",
            "status": CallStatus.QUEUED,
            "created_at": at(created),
        }
        values.update(fields)
        return CallRecord(**values)

    return make
