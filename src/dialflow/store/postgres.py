"""The scale-out backend: PostgreSQL through asyncpg (``DIALFLOW_DATABASE_URL=postgresql://…``).

Same query functions as SQLite (the ``sql_*`` mixins), run with ``conn.run_sync`` on an
async engine: each store call is one transaction on one pooled connection, without a
thread hop. PostgreSQL has row locks and MVCC, so there is no single writer here: writes
from this process and from other nodes run side by side.

Migrations run inside one transaction holding a transaction-scoped advisory lock, so
several nodes starting together upgrade once: the others wait for the lock, then find
the database at head. PostgreSQL's DDL is transactional, so a failed upgrade leaves
nothing half-done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .base import StoreError
from .migrate import upgrade_to_head
from .sql_calls import CallsMixin
from .sql_catalog import CatalogMixin
from .sql_webhooks import WebhooksMixin

log = logging.getLogger(__name__)

T = TypeVar("T")

# pg_advisory_xact_lock key: any constant shared by every dialflow process ("dialflow").
MIGRATION_LOCK_KEY = 0x6469616C666C6F77
UNIQUE_VIOLATION = "23505"


def asyncpg_url(database_url: str) -> URL:
    """``postgresql://``, ``postgres://`` or ``postgresql+<driver>://`` → the asyncpg URL
    (``sslmode=`` becomes asyncpg's ``ssl=``)."""
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url[len("postgres://") :]
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise StoreError(f"not a PostgreSQL URL: {url.get_backend_name()!r}")
    # SQLAlchemy passes the query string to asyncpg.connect() as keyword arguments, and
    # asyncpg spells libpq's sslmode "ssl" (same values): providers hand out sslmode URLs.
    if "sslmode" in url.query and "ssl" not in url.query:
        url = url.update_query_dict({"ssl": url.query["sslmode"]}).difference_update_query(
            ["sslmode"]
        )
    return url.set(drivername="postgresql+asyncpg")


def _migrate(conn: Connection) -> str | None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    return upgrade_to_head(conn)


class PostgresStore(CatalogMixin, CallsMixin, WebhooksMixin):
    """The Store on a PostgreSQL database (created beforehand; the schema is ours)."""

    def __init__(self, database_url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = asyncpg_url(database_url)
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._engine: AsyncEngine | None = None

    def __repr__(self) -> str:
        state = "open" if self._opened else "closed"
        return f"<PostgresStore {self.url.render_as_string(hide_password=True)} {state}>"

    async def _start(self) -> None:
        self._engine = create_async_engine(
            self.url,
            pool_size=self._pool_size,
            max_overflow=self._max_overflow,
            # A node outlives database restarts and failovers: test a pooled connection
            # before handing it out rather than fail the request that gets a dead one.
            pool_pre_ping=True,
            connect_args={"timeout": 10, "server_settings": {"application_name": "dialflow"}},
        )
        try:
            async with self._engine.begin() as conn:
                upgraded_from = await conn.run_sync(_migrate)
        except (OSError, TimeoutError) as exc:
            # Refused / unreachable: asyncpg raises these unwrapped on connect.
            await self._stop()
            where = self.url.render_as_string(hide_password=True)
            raise StoreError(f"cannot open the database at {where}: {exc}") from exc
        except BaseException:
            await self._stop()
            raise
        if upgraded_from is not None:
            log.info(
                "database %s migrated from %s",
                self.url.render_as_string(hide_password=True),
                upgraded_from,
            )

    async def _stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def _execute_write(self, fn: Callable[[Connection], T]) -> T:
        engine = self._engine_or_fail()
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(fn)
        except (OSError, TimeoutError) as exc:
            raise StoreError(f"database unreachable: {exc}") from exc

    async def _execute_read(self, fn: Callable[[Connection], T]) -> T:
        engine = self._engine_or_fail()
        try:
            async with engine.connect() as conn:
                result = await conn.run_sync(fn)
                await conn.rollback()  # end the implicit read transaction before check-in
                return result
        except (OSError, TimeoutError) as exc:
            raise StoreError(f"database unreachable: {exc}") from exc

    def _engine_or_fail(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreError("the store is not open")
        return self._engine

    def _is_unique_violation(self, exc: IntegrityError) -> bool:
        return _sqlstate(exc.orig) == UNIQUE_VIOLATION


def _sqlstate(orig: Any) -> str | None:
    """asyncpg's error behind SQLAlchemy's adapter carries the SQLSTATE."""
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None
