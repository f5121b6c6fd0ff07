"""The part of the SQL backends that does not depend on the database: how queries are
run, error translation and the life-cycle skeleton.

Every query is a plain synchronous function over a SQLAlchemy Core
:class:`~sqlalchemy.Connection` (``def op(conn, …) -> result``), defined next to the
public method that uses it in the ``sql_*`` mixins. A backend decides where such a
function runs, through two hooks:

- :meth:`SqlBase._run_write` — inside a write transaction, committed before it returns;
- :meth:`SqlBase._run_read` — on a connection for reads.

``sqlite.py`` runs them on its own writer thread and reader threads (one thread hop
per store call instead of one per DBAPI call). A PostgreSQL backend runs the very
same functions on an async engine (asyncpg) with ``await conn.run_sync(op, …)``:
that is why they are synchronous, and why they use only portable Core.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .base import Conflict, StoreError

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
Query = Callable[Concatenate[Connection, P], T]


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- small query functions shared by the mixins ---------------------------------------


def _first(conn: Connection, query: Any) -> Row[Any] | None:
    return conn.execute(query).first()


def _all(conn: Connection, query: Any, params: dict[str, Any] | None = None) -> list[Row[Any]]:
    return list(conn.execute(query, params).all())


def _execute(conn: Connection, statement: Any, params: Any = None) -> None:
    """One statement; a list of parameter dicts makes it an executemany."""
    conn.execute(statement, params)


def _rowcount(conn: Connection, statement: Any) -> int:
    return int(conn.execute(statement).rowcount)


def _select_one(conn: Connection) -> int:
    return int(conn.execute(select(1)).scalar_one())


class SqlBase:
    """Runs query functions through the backend's hooks and translates errors."""

    _opened: bool = False

    # -- dialect hooks -----------------------------------------------------------------
    async def _start(self) -> None:
        """Connect and bring the schema to the head migration."""
        raise NotImplementedError

    async def _stop(self) -> None:
        raise NotImplementedError

    async def _execute_write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction; commit before returning its result."""
        raise NotImplementedError

    async def _execute_read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a connection for reads (one consistent statement at a time)."""
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
            await self._start()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the database: {exc}") from exc
        self._opened = True

    async def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        await self._stop()

    async def healthy(self) -> bool:
        """A cheap round trip to the database."""
        if not self._opened:
            return False
        try:
            return await self._run_read(_select_one) == 1
        except Exception:
            log.warning("storage health check failed", exc_info=True)
            return False

    # -- running queries -----------------------------------------------------------------
    async def _run_write(
        self, what: str, fn: Query[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(conn, *args, **kwargs)`` in a write transaction. A duplicate key becomes
        :class:`Conflict` (naming ``what``, e.g. "trunk acme/main"), any other database
        error :class:`StoreError`; the transaction is rolled back in both cases."""
        self._check_open()
        try:
            return await self._execute_write(lambda conn: fn(conn, *args, **kwargs))
        except IntegrityError as exc:
            if self._is_unique_violation(exc):
                raise Conflict(f"{what} already exists") from exc
            raise StoreError(f"{what}: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"{what}: {exc}") from exc

    async def _run_read(self, fn: Query[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        self._check_open()
        try:
            return await self._execute_read(lambda conn: fn(conn, *args, **kwargs))
        except SQLAlchemyError as exc:
            raise StoreError(str(exc)) from exc

    def _check_open(self) -> None:
        if not self._opened:
            raise StoreError("the store is not open")
