"""Choose the storage backend from ``DIALFLOW_DATABASE_URL`` (API.md) and the data dir."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .base import Store, StoreError
from .sqlite import MEMORY, SqliteStore

DEFAULT_FILE = "dialflow.db"


def sqlite_path(database_url: str | None, data_dir: Path) -> Path | str:
    """The SQLite file a URL names: None → ``<data_dir>/dialflow.db``;
    ``sqlite:///rel.db``, ``sqlite:////abs/path.db`` (also ``sqlite+aiosqlite://…``);
    ``sqlite://`` or ``sqlite:///:memory:`` → ``":memory:"``. Raises StoreError for
    other URLs."""
    if database_url is None or not database_url.strip():
        return Path(data_dir) / DEFAULT_FILE
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        # Not the URL itself: it may hold a password.
        raise StoreError("invalid database URL (DIALFLOW_DATABASE_URL)") from exc
    if url.get_backend_name() != "sqlite":
        raise StoreError(f"not a SQLite URL: {url.get_backend_name()!r}")
    if not url.database or url.database == MEMORY:
        return MEMORY
    return Path(url.database)


async def open_store(database_url: str | None, data_dir: Path) -> Store:
    """The opened store for a database URL (None: SQLite file ``<data_dir>/dialflow.db``).

    Connects and migrates to the head revision before returning; ``await
    store.close()`` at shutdown. Use :func:`make_store` for an unopened one.
    """
    store = make_store(database_url, data_dir)
    await store.open()
    return store


def make_store(database_url: str | None, data_dir: Path) -> Store:
    """The store for a database URL, not opened yet (``await store.open()``)."""
    if database_url is not None and database_url.strip():
        try:
            backend = make_url(database_url).get_backend_name()
        except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
            # Not the URL itself: it may hold a password.
            raise StoreError("invalid database URL (DIALFLOW_DATABASE_URL)") from exc
        if backend in ("postgresql", "postgres"):
            from .postgres import PostgresStore

            return PostgresStore(database_url)
        if backend != "sqlite":
            raise StoreError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
    return SqliteStore(sqlite_path(database_url, data_dir))
