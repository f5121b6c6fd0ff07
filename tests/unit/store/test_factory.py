"""Backend selection from DIALFLOW_DATABASE_URL (store/factory.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialflow.store import SqliteStore, StoreError, make_store, open_store
from dialflow.store.factory import sqlite_path
from dialflow.store.postgres import PostgresStore


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, Path("/data/dialflow.db")),
        ("", Path("/data/dialflow.db")),
        ("sqlite:///rel/x.db", Path("rel/x.db")),
        ("sqlite:////abs/x.db", Path("/abs/x.db")),
        ("sqlite+aiosqlite:////abs/y.db", Path("/abs/y.db")),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_paths(url: str | None, expected: Path | str) -> None:
    assert sqlite_path(url, Path("/data")) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@db/x", "unsupported"),
        ("not a url", "invalid"),
        ("not a url with:secret@", "invalid"),
        ("postgresql://u:secret@db:port/x", "invalid"),
    ],
)
def test_other_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as exc:
        make_store(url, Path("/data"))
    assert "secret" not in str(exc.value)
    with pytest.raises(StoreError) as exc:
        sqlite_path(url, Path("/data"))  # also reached by the migrations command line
    assert "secret" not in str(exc.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:secret@db/dialflow",
        "postgres://u:secret@db/dialflow",
        "postgresql+asyncpg://u:secret@db:5433/dialflow",
        "postgresql+psycopg://u:secret@db/dialflow",
    ],
)
def test_postgresql_urls_make_a_postgres_store(url: str) -> None:
    store = make_store(url, Path("/data"))
    assert isinstance(store, PostgresStore)
    assert store.url.drivername == "postgresql+asyncpg"
    assert "secret" not in repr(store)


def test_libpq_sslmode_becomes_asyncpgs_ssl() -> None:
    # asyncpg.connect() has no sslmode argument: passed through it would be a TypeError.
    store = make_store("postgresql://u:secret@db/x?sslmode=verify-full", Path("/data"))
    assert isinstance(store, PostgresStore)
    assert dict(store.url.query) == {"ssl": "verify-full"}
    store = make_store("postgresql://u@db/x?ssl=require&sslmode=disable", Path("/data"))
    assert isinstance(store, PostgresStore)
    assert store.url.query["ssl"] == "require"  # an explicit ssl= wins


async def test_open_store_defaults_to_a_file_in_the_data_dir(tmp_path: Path) -> None:
    store = await open_store(None, tmp_path / "data")
    try:
        assert isinstance(store, SqliteStore)
        assert await store.healthy()
        assert (tmp_path / "data" / "dialflow.db").is_file()
    finally:
        await store.close()


def test_make_store_does_not_open(tmp_path: Path) -> None:
    store = make_store(None, tmp_path)
    assert isinstance(store, SqliteStore)
    assert not (tmp_path / "dialflow.db").exists()
