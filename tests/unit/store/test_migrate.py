"""Migrations (store/migrate.py, store/migrations/): fresh upgrade, idempotence,
linear history, and agreement between the migrations and schema.py (on SQLite and on
PostgreSQL, where the dialect-specific parts — partial indexes, types — differ)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, event, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from dialflow.store import SqliteStore
from dialflow.store.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    script_directory,
    upgrade_to_head,
)
from dialflow.store.migrations.__main__ import main
from dialflow.store.postgres import asyncpg_url
from dialflow.store.schema import metadata

from ...pg_server import drop_database, new_database

TABLES = {
    "alembic_version",
    "api_keys",
    "call_events",
    "calls",
    "flow_versions",
    "flows",
    "idempotency_keys",
    "numbers",
    "organizations",
    "trunks",
    "webhook_attempts",
    "webhook_deliveries",
}


def revision_of(path: Path) -> str | None:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


async def test_a_fresh_database_is_upgraded_to_head(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "fresh.db"  # the directory is created too
    store = SqliteStore(path)
    await store.open()
    await store.close()
    assert revision_of(path) == head_revision()
    # It holds secrets: owner only, and SQLite gives its WAL files the same mode.
    assert path.stat().st_mode & 0o777 == 0o600
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


async def test_opening_twice_runs_no_ddl(tmp_path: Path) -> None:
    path = tmp_path / "twice.db"
    first = SqliteStore(path)
    await first.open()
    await first.close()

    second = SqliteStore(path)
    statements: list[str] = []
    real_engine = second._engine

    def spying_engine(*, writer: bool):  # type: ignore[no-untyped-def]
        engine = real_engine(writer=writer)
        event.listen(
            engine,
            "before_cursor_execute",
            lambda conn, cursor, sql, params, context, many: statements.append(sql),
        )
        return engine

    second._engine = spying_engine  # type: ignore[method-assign]
    await second.open()
    await second.open()  # already open: nothing at all
    await second.close()
    assert statements, "the version check should have run"
    assert not [s for s in statements if re.match(r"\s*(CREATE|ALTER|DROP|INSERT)", s, re.I)]
    assert revision_of(path) == head_revision()


async def test_two_stores_opening_one_fresh_file_at_once(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE serializes the two migrations; the second finds nothing to do."""
    path = tmp_path / "race.db"
    stores = [SqliteStore(path), SqliteStore(path)]
    await asyncio.gather(*(s.open() for s in stores))
    assert all([await s.healthy() for s in stores])
    for s in stores:
        await s.close()
    assert revision_of(path) == head_revision()


def test_revision_history_is_linear() -> None:
    scripts = script_directory()
    revisions = list(scripts.walk_revisions())  # head first
    assert scripts.get_heads() == [head_revision()]
    assert len(scripts.get_bases()) == 1
    for newer, older in zip(revisions, revisions[1:], strict=False):
        assert newer.down_revision == older.revision  # a single parent, no merges
    assert revisions[-1].down_revision is None
    # Numbered 0001, 0002, … and named after their revision.
    numbers = [r.revision for r in reversed(revisions)]
    assert numbers == [f"{n:04d}" for n in range(1, len(numbers) + 1)]
    for r in revisions:
        assert Path(r.path).name.startswith(f"{r.revision}_")
        assert r.branch_labels == set() and not r.dependencies


def test_migrations_and_schema_py_agree(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'cmp.db'}")
    try:
        with engine.begin() as conn:
            assert upgrade_to_head(conn) == "base"
            assert upgrade_to_head(conn) is None
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def _schema_differences(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _downgrade_to_base(conn: Connection) -> None:
    command.downgrade(alembic_config(conn), "base")


async def test_postgresql_migrations_match_schema_py_and_go_down_and_up(
    postgres_server: str,
) -> None:
    url = await new_database(postgres_server, migrated=False)
    engine = create_async_engine(asyncpg_url(url))
    try:
        async with engine.begin() as conn:
            assert await conn.run_sync(upgrade_to_head) == "base"
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_differences) == []
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade_to_base)
        async with engine.begin() as conn:
            assert await conn.run_sync(_table_names) == {"alembic_version"}
            assert await conn.run_sync(upgrade_to_head) == "base"
            assert await conn.run_sync(_table_names) == TABLES
    finally:
        await engine.dispose()
        await drop_database(url)


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'down.db'}")
    try:
        with engine.begin() as conn:
            upgrade_to_head(conn)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        with engine.begin() as conn:
            assert current_revision(conn) is None
            upgrade_to_head(conn)
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


def test_command_line_upgrade_and_history(tmp_path: Path, capsys: object) -> None:
    assert main(["upgrade", "--data-dir", str(tmp_path)]) == 0
    assert revision_of(tmp_path / "dialflow.db") == head_revision()
    assert main(["current", "--data-dir", str(tmp_path)]) == 0
    assert main(["history"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.splitlines()[0] == head_revision()
    assert "0001  initial schema" in out
