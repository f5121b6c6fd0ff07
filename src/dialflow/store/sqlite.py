"""The embedded backend: one SQLite file under the data directory.

Everything SQLite-specific lives here (and in ``sqlite_writer.py``); the queries are
the portable ones of the ``sql_*`` mixins.

Connections and threads:
- **One writer.** SQLite allows one writer at a time; two connections racing for the
  write lock get "database is locked". All writes go through one connection owned by
  a :class:`~.sqlite_writer.WriterThread` (group commit, one thread hop per store
  call). Its transactions start with ``BEGIN IMMEDIATE``, which takes the file's
  write lock at once: a deferred transaction that reads and then writes can fail with
  SQLITE_BUSY when another process wrote in between, and ``busy_timeout`` cannot
  retry that case, while it does retry a BEGIN IMMEDIATE.
- **Many readers.** In WAL mode readers block neither the writer nor each other, so
  reads run on a small thread pool, each thread borrowing one of a pool of
  ``query_only`` connections in autocommit (each statement sees one snapshot).
- ``:memory:`` databases have one connection (a second connection would be a second,
  empty database), so reads go through the writer thread as well.

The sqlite3 module's own transaction handling is switched off (``isolation_level =
None``) and SQLAlchemy's ``begin`` event emits the BEGIN, as the SQLAlchemy SQLite
documentation recommends ("Enabling Non-Legacy SQLite Transactional Modes"): with the
legacy handling, DDL would not be inside the migration's transaction and SAVEPOINTs
would not nest properly.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from .base import StoreError
from .migrate import upgrade_to_head
from .sql_calls import CallsMixin
from .sql_catalog import CatalogMixin
from .sql_webhooks import WebhooksMixin
from .sqlite_writer import WriterThread

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        # Wait this long for another process's lock instead of failing at once.
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Off by default in SQLite, and per connection.
        cursor.execute("PRAGMA foreign_keys = ON")
        if writer:
            # WAL: readers and the writer do not block each other; kept in the file.
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
    """PRAGMA foreign_keys is a no-op inside a transaction: sent on the DBAPI connection
    directly, so that SQLAlchemy does not begin one first."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def _migrate(engine: Engine, path: object) -> str | None:
    """Upgrade to head inside one BEGIN IMMEDIATE transaction: atomic, and a second
    process opening the same file waits, then finds nothing to do.

    Foreign keys are off meanwhile, as SQLite's ALTER TABLE procedure requires: a batch
    migration rebuilds a table by copy-and-rename, which must not cascade;
    ``PRAGMA foreign_key_check`` verifies the result before COMMIT.
    """
    with engine.connect() as conn:
        _set_foreign_keys(conn, False)
        try:
            with conn.begin():
                upgraded_from = upgrade_to_head(conn)
                if upgraded_from is not None:
                    problems = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if problems:
                        raise StoreError(f"migration broke foreign keys: {problems[:5]}")
                    log.info("database %s migrated from %s", path, upgraded_from)
        finally:
            _set_foreign_keys(conn, True)
    return upgraded_from


class SqliteStore(CatalogMixin, CallsMixin, WebhooksMixin):
    """The Store on a SQLite file (or ``":memory:"``, for tests).

    :meth:`open` creates the directory and the file and migrates to the head
    revision; :meth:`close` finishes queued writes and closes every connection.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        read_connections: int = 4,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self._memory = str(path) == MEMORY
        self.path: Path | str = MEMORY if self._memory else Path(path)
        self._read_connections = max(1, read_connections)
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: WriterThread | None = None
        self._reader: Engine | None = None
        self._read_pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"<SqliteStore {self.path} {state}>"

    # -- engines -----------------------------------------------------------------------
    def _engine(self, *, writer: bool) -> Engine:
        url = URL.create("sqlite+pysqlite", database=str(self.path))
        options: dict[str, Any] = {
            "connect_args": {
                # Connections move between the pool's threads (one at a time).
                "check_same_thread": False,
                # sqlite3's per-connection cache of prepared statements, by SQL text
                # (default 128): room for every statement the store issues.
                "cached_statements": 256,
            },
            # Transactions always end in COMMIT/ROLLBACK (writer) or never begin
            # (readers, autocommit): no ROLLBACK on every check-in.
            "pool_reset_on_return": None,
        }
        if self._memory:
            options["poolclass"] = StaticPool
        else:
            options["pool_size"] = 1 if writer else self._read_connections
            options["max_overflow"] = 0
        engine = create_engine(url, **options)
        listener = functools.partial(
            _on_connect,
            writer=writer,
            busy_timeout_ms=self._busy_timeout_ms,
            check_wal=not self._memory,
        )
        event.listen(engine, "connect", listener)
        if writer:
            event.listen(engine, "begin", _begin_immediate)
        return engine

    async def _start(self) -> None:
        if isinstance(self.path, Path):
            _create_private(self.path)
        self._writer = WriterThread(self._engine(writer=True))
        self._writer.start()
        try:
            await self._writer.run_alone(functools.partial(_migrate, path=self.path))
        except BaseException:
            await self._stop()
            raise
        if not self._memory:
            self._reader = self._engine(writer=False)
            self._read_pool = ThreadPoolExecutor(
                self._read_connections, thread_name_prefix="dialflow-store-read"
            )

    async def _stop(self) -> None:
        writer, self._writer = self._writer, None
        pool, self._read_pool = self._read_pool, None
        reader, self._reader = self._reader, None
        if writer is not None:
            await writer.stop()
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True)
        if reader is not None:
            reader.dispose()

    async def healthy(self) -> bool:
        """The writer thread is alive and a reader answers ``SELECT 1``."""
        if self._writer is None or not self._writer.is_alive():
            return False
        return await super().healthy()

    # -- running queries ---------------------------------------------------------------
    async def _execute_write(self, fn: Callable[[Connection], T]) -> T:
        writer = self._writer
        if writer is None:
            raise StoreError("the store is not open")
        return await writer.submit(fn)

    async def _execute_read(self, fn: Callable[[Connection], T]) -> T:
        reader, pool = self._reader, self._read_pool
        if reader is None or pool is None:
            return await self._execute_write(fn)  # :memory: has one connection
        return await asyncio.get_running_loop().run_in_executor(pool, _read, reader, fn)

    def _is_unique_violation(self, exc: IntegrityError) -> bool:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if code is not None:
            return code in _UNIQUE_CODES
        return "UNIQUE constraint failed" in str(exc.orig)  # pragma: no cover


def _create_private(path: Path) -> None:
    """Create the directory and an empty database file readable by its owner only: the
    file holds webhook secrets and trunk passwords in clear (they are needed to sign
    and to answer digest challenges). SQLite gives its -wal and -shm files the same
    permissions as the database file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _read(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """On a reader thread: borrow a connection for one query function."""
    with engine.connect() as conn:
        return fn(conn)
