"""The embedded backend: one SQLite file under the data directory (aiosqlite).

Everything SQLite-specific lives here; the queries are the portable ones of the
``sql_*`` mixins.

Connections and transactions:
- **One writer.** SQLite allows one writer at a time; two connections racing for the
  write lock get "database is locked". All writes therefore go through a single
  connection, one transaction at a time (an ``asyncio.Lock``), opened with
  ``BEGIN IMMEDIATE`` so the file's write lock is taken at the start (a deferred
  transaction that reads and then writes can fail with SQLITE_BUSY when another
  process wrote in between; ``busy_timeout`` cannot retry that case, it can retry a
  BEGIN IMMEDIATE).
- **Many readers.** In WAL mode readers never block the writer nor each other, so
  reads use a small pool of separate ``query_only`` connections in autocommit (each
  statement is its own consistent snapshot).
- ``:memory:`` databases have one connection (every connection would otherwise be a
  different empty database): reads share the writer and its lock.

The driver's own transaction handling is switched off (``isolation_level = None``) and
SQLAlchemy's ``begin`` event emits the BEGIN, as the SQLAlchemy SQLite documentation
recommends ("Enabling Non-Legacy SQLite Transactional Modes"): without it, Python's
sqlite3 module would not put DDL in the migration's transaction.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from .base import StoreError
from .migrate import upgrade_to_head
from .sql_calls import CallsMixin
from .sql_catalog import CatalogMixin
from .sql_webhooks import WebhooksMixin

log = logging.getLogger(__name__)

MEMORY = ":memory:"
# SQLite result codes for a duplicate key (https://sqlite.org/rescode.html).
_UNIQUE_CODES = frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY})


def _on_connect(
    dbapi_connection: Any,
    record: ConnectionPoolEntry,
    *,
    writer: bool,
    busy_timeout_ms: int,
    check_wal: bool,
) -> None:
    """Per-connection settings (PRAGMAs are per connection, except journal_mode)."""
    # Let SQLAlchemy's "begin" event emit BEGIN; the driver must not add its own.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Wait for another process's lock instead of failing at once.
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Off by default in SQLite, per connection.
        cursor.execute("PRAGMA foreign_keys = ON")
        if writer:
            # WAL: readers and the writer do not block each other; persistent in the file.
            cursor.execute("PRAGMA journal_mode = WAL")
            mode = str(cursor.fetchone()[0]).lower()
            if check_wal and mode != "wal":
                log.warning("SQLite refused WAL mode (journal_mode=%s): readers will wait", mode)
            # In WAL mode NORMAL is still corruption-safe; a power cut may lose the last
            # commits, which an fsync per commit would cost throughput to prevent.
            cursor.execute("PRAGMA synchronous = NORMAL")
        else:
            cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()


def _begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _set_foreign_keys(conn: Connection, on: bool) -> None:
    """PRAGMA foreign_keys, which is a no-op inside a transaction: sent on the raw DBAPI
    connection so that SQLAlchemy does not begin one first."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def _foreign_key_problems(conn: Connection) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.exec_driver_sql("PRAGMA foreign_key_check").all()]


class SqliteStore(CatalogMixin, CallsMixin, WebhooksMixin):
    """The Store on a SQLite file (or ``":memory:"`` for tests).

    Call :meth:`open` before use (it creates the directory and the file and migrates
    to the head revision) and :meth:`close` at the end.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        read_connections: int = 4,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = path if str(path) == MEMORY else Path(path)
        self._memory = str(path) == MEMORY
        self._read_connections = max(1, read_connections)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"<SqliteStore {self.path} {state}>"

    # -- engines -----------------------------------------------------------------------
    def _engine(self, *, writer: bool) -> AsyncEngine:
        url = URL.create("sqlite+aiosqlite", database=str(self.path))
        options: dict[str, Any] = {
            # Transactions always end in COMMIT/ROLLBACK (writer) or never begin
            # (readers, autocommit): no extra ROLLBACK round trip on every check-in.
            "pool_reset_on_return": None,
        }
        if self._memory:
            options["poolclass"] = StaticPool
        else:
            options["pool_size"] = 1 if writer else self._read_connections
            options["max_overflow"] = 0
        engine = create_async_engine(url, **options)
        listener = functools.partial(
            _on_connect,
            writer=writer,
            busy_timeout_ms=self._busy_timeout_ms,
            check_wal=not self._memory,
        )
        event.listen(engine.sync_engine, "connect", listener)
        if writer:
            event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine

    async def _connect_engines(self) -> None:
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self._engine(writer=True)
        try:
            await self._migrate(self._writer)
            if not self._memory:
                self._reader = self._engine(writer=False)
        except BaseException:
            await self._dispose_engines()
            raise

    async def _dispose_engines(self) -> None:
        for engine in (self._reader, self._writer):
            if engine is not None:
                await engine.dispose()
        self._reader = self._writer = None

    async def _migrate(self, engine: AsyncEngine) -> None:
        """Upgrade to head inside one BEGIN IMMEDIATE transaction (atomic, and a second
        process opening the same file waits, then finds nothing to do).

        Foreign keys are off meanwhile, as SQLite's ALTER TABLE procedure requires: a
        batch migration rebuilds a table by copy-and-rename, which must not cascade;
        ``PRAGMA foreign_key_check`` then verifies the result before COMMIT.
        """
        async with self._write_lock, engine.connect() as conn:
            await conn.run_sync(_set_foreign_keys, False)
            try:
                async with conn.begin():
                    upgraded_from = await conn.run_sync(upgrade_to_head)
                    if upgraded_from is not None:
                        problems = await conn.run_sync(_foreign_key_problems)
                        if problems:
                            raise StoreError(f"migration broke foreign keys: {problems[:5]}")
                        log.info("database %s migrated from %s", self.path, upgraded_from)
            finally:
                await conn.run_sync(_set_foreign_keys, True)

    # -- connections -------------------------------------------------------------------
    @asynccontextmanager
    async def _write_connection(self) -> AsyncIterator[AsyncConnection]:
        engine = self._writer
        if engine is None:
            raise StoreError("the store is not open")
        async with self._write_lock, engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read_connection(self) -> AsyncIterator[AsyncConnection]:
        if self._reader is not None:
            async with self._reader.connect() as conn:
                yield conn
            return
        engine = self._writer
        if engine is None:
            raise StoreError("the store is not open")
        async with self._write_lock, engine.connect() as conn:
            yield conn

    def _is_unique_violation(self, exc: IntegrityError) -> bool:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if code is not None:
            return code in _UNIQUE_CODES
        return "UNIQUE constraint failed" in str(exc.orig)  # pragma: no cover
