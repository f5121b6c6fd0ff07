"""A private PostgreSQL server for the tests that need one (store tests, scale-out e2e).

``initdb`` into a temporary directory and ``pg_ctl start`` on a free loopback port, once
per test run; stopped at the end. initdb refuses to run as root, so as root the cluster
belongs to the ``postgres`` system user (Debian's package creates it). A test that needs
a database of its own gets one from :func:`new_database`, cloned from a template
migrated once per run (``CREATE DATABASE … TEMPLATE``); the many small store tests
instead share one database emptied before each (:func:`reset_database`), which measured
~20 ms per test (empty, open, close) against 64–91 ms to clone, open and drop one.

``DIALFLOW_TEST_DATABASE_URL`` (a superuser URL of an existing server; its database
part is ignored) is used instead when set: the run creates its template and databases
there, under names unique to the run, and drops them at the end. Without the server
binaries (Debian package ``postgresql``, installed by
``scripts/install-system-deps.sh``) the tests are skipped — except in CI (``CI`` set),
where a missing server is a failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import make_url

from .ports import free_tcp_port

T = TypeVar("T")

# Unique per run: two runs against one DIALFLOW_TEST_DATABASE_URL server do not collide.
TEMPLATE = f"dialflow_template_{secrets.token_hex(4)}"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A superuser URL (no database part) of a server living for the whole run."""
    external = os.environ.get("DIALFLOW_TEST_DATABASE_URL")
    if external:
        # Any of the URL forms dialflow takes; the admin connections are plain asyncpg.
        server = make_url(external.replace("postgres://", "postgresql://", 1))
        url = server.set(drivername="postgresql", database=None).render_as_string(
            hide_password=False
        )
        _in_fresh_loop(_create_template(url))
        try:
            yield url
        finally:
            _in_fresh_loop(_admin(url, f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"))
        return
    bindir = _pg_bin()
    if bindir is None:
        message = "PostgreSQL server binaries not installed (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp dir: its parents are root-only (0700), out of reach of the
    # postgres user.
    root = Path(tempfile.mkdtemp(prefix="dialflow-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = free_tcp_port()
    subprocess.run(
        _as_owner(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        ),  # fmt: skip
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-h 127.0.0.1 -p {port} -k {data} -F -c fsync=off -c full_page_writes=off"
    subprocess.run(
        _as_owner(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(data / "log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        ),  # fmt: skip
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}"
        _in_fresh_loop(_create_template(url))
        yield url
    finally:
        subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            stdout=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """One migrated database for the whole run; :func:`reset_database` empties it."""
    url = _in_fresh_loop(new_database(postgres_server))
    try:
        yield url
    finally:
        _in_fresh_loop(drop_database(url))


def _in_fresh_loop(coro: Coroutine[Any, Any, T]) -> T:
    # Session fixtures may be set up while a test's event loop runs: not on that loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _admin(url: str, *statements: str, database: str = "postgres") -> None:
    import asyncpg

    conn = await asyncpg.connect(_database_url(url, database))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _create_template(url: str) -> None:
    from dialflow.store.postgres import PostgresStore

    await _admin(url, f"DROP DATABASE IF EXISTS {TEMPLATE}", f"CREATE DATABASE {TEMPLATE}")
    store = PostgresStore(_database_url(url, TEMPLATE))
    await store.open()
    await store.close()


async def new_database(server_url: str, *, migrated: bool = True) -> str:
    """A fresh database on the test server (migrated to head, or empty); its URL."""
    name = "t_" + secrets.token_hex(6)
    template = f" TEMPLATE {TEMPLATE}" if migrated else ""
    await _admin(server_url, f"CREATE DATABASE {name}{template}")
    return _database_url(server_url, name)


async def drop_database(database_url: str) -> None:
    name = make_url(database_url).database
    await _admin(database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def reset_database(database_url: str) -> None:
    """Empty every table of a migrated database (the schema and its revision stay) and
    restart its sequences, as a fresh one would be."""
    from dialflow.store.schema import metadata

    # DELETE, not TRUNCATE: on tables of a few rows it takes ~1 ms, where TRUNCATE takes
    # ~13 ms (it swaps in new files for every table). Children first, for the FKs.
    deletes = [f"DELETE FROM {table.name}" for table in reversed(metadata.sorted_tables)]
    name = make_url(database_url).database or ""
    await _admin(
        database_url,
        # A store some test left open would hold locks the deletes wait for.
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        "; ".join(deletes),
        "DO $$ DECLARE s record; BEGIN"
        " FOR s IN SELECT schemaname, sequencename FROM pg_sequences LOOP"
        " EXECUTE format('ALTER SEQUENCE %I.%I RESTART', s.schemaname, s.sequencename);"
        " END LOOP; END $$",
        database=name,
    )
