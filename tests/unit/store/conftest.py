"""Fixtures: a store on a fresh SQLite file per test (copied from a template migrated
once per session, so tests do not pay for the migration each time)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dialflow.store import CallRecord, CallStatus, Organization, SqliteStore

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

    asyncio.run(migrate())
    return path


@pytest.fixture
def db_path(tmp_path: Path, template_db: Path) -> Path:
    path = tmp_path / "dialflow.db"
    shutil.copyfile(template_db, path)
    return path


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(db_path)
    await s.open()
    await s.create_org(Organization("acme", "Acme"))
    await s.create_org(Organization("other", "Other"))
    try:
        yield s
    finally:
        await s.close()


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
