"""The part of the SQL backends that does not depend on the database: transactions,
error translation and the life-cycle skeleton.

A backend (``sqlite.py`` now, ``postgres.py`` next) subclasses the query mixins
(``sql_catalog.py``, ``sql_calls.py``, ``sql_webhooks.py``, all built on
:class:`SqlBase`) and supplies the four dialect hooks: :meth:`SqlBase._connect_engines`,
:meth:`SqlBase._write_connection`, :meth:`SqlBase._read_connection` and
:meth:`SqlBase._is_unique_violation`. Everything else is portable SQLAlchemy Core.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from .base import Conflict, StoreError

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class SqlBase:
    """Transactions and error translation over an async SQLAlchemy engine."""

    _opened: bool = False

    # -- dialect hooks -----------------------------------------------------------------
    async def _connect_engines(self) -> None:
        """Create the engines and bring the schema to the head migration."""
        raise NotImplementedError

    async def _dispose_engines(self) -> None:
        raise NotImplementedError

    def _write_connection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection inside a write transaction, committed when the block ends.

        SQLite serializes these (one writer); PostgreSQL takes one from the pool.
        """
        raise NotImplementedError

    def _read_connection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads only (no transaction guarantees beyond one statement)."""
        raise NotImplementedError

    def _is_unique_violation(self, exc: IntegrityError) -> bool:
        """True for a duplicate key; False for other integrity errors (foreign key…)."""
        raise NotImplementedError

    # -- life cycle ----------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and bring the schema to the latest migration (idempotent)."""
        if self._opened:
            return
        try:
            await self._connect_engines()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the database: {exc}") from exc
        self._opened = True

    async def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        await self._dispose_engines()

    async def healthy(self) -> bool:
        """A cheap round trip to the database."""
        if not self._opened:
            return False
        try:
            async with self._read_connection() as conn:
                await conn.execute(select(1))
        except Exception:
            log.warning("storage health check failed", exc_info=True)
            return False
        return True

    # -- transactions --------------------------------------------------------------------
    @asynccontextmanager
    async def _write(self, what: str) -> AsyncIterator[AsyncConnection]:
        """A write transaction; database errors become :class:`StoreError`/:class:`Conflict`.

        ``what`` names the object for the error message ("trunk acme/main").
        """
        self._check_open()
        try:
            async with self._write_connection() as conn:
                yield conn
        except IntegrityError as exc:
            if self._is_unique_violation(exc):
                raise Conflict(f"{what} already exists") from exc
            raise StoreError(f"{what}: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"{what}: {exc}") from exc

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        self._check_open()
        try:
            async with self._read_connection() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(str(exc)) from exc

    def _check_open(self) -> None:
        if not self._opened:
            raise StoreError("the store is not open")
