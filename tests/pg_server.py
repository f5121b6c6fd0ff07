"""A private PostgreSQL server for the tests that need one (store tests, scale-out e2e).

``initdb`` into a temporary directory and ``pg_ctl start`` on a free loopback port, once
per test run; stopped at the end. initdb refuses to run as root, so as root the cluster
belongs to the ``postgres`` system user (Debian's package creates it). Each test gets
its own database, cloned from a template migrated once (``CREATE DATABASE … TEMPLATE``:
~20 ms instead of running the migrations again).

``DIALFLOW_TEST_DATABASE_URL`` (a superuser URL of an existing server) is used instead
when set. Without the server binaries (Debian package ``postgresql``, installed by
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
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TEMPLATE = "dialflow_template"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A superuser URL (no database part) of a server living for the whole run."""
    external = os.environ.get("DIALFLOW_TEST_DATABASE_URL")
    if external:
        yield external.rsplit("/", 1)[0]
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
    port = _free_port()
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
        # Session fixtures may be set up while a test's event loop runs: not on it.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _create_template(url)).result()
        yield url
    finally:
        subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            stdout=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


async def _admin(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url + "/postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _create_template(url: str) -> None:
    from dialflow.store.postgres import PostgresStore

    await _admin(url, f"DROP DATABASE IF EXISTS {TEMPLATE}", f"CREATE DATABASE {TEMPLATE}")
    store = PostgresStore(f"{url}/{TEMPLATE}")
    await store.open()
    await store.close()


async def new_database(server_url: str, *, migrated: bool = True) -> str:
    """A fresh database on the test server (migrated to head, or empty); its URL."""
    name = "t_" + secrets.token_hex(6)
    template = f" TEMPLATE {TEMPLATE}" if migrated else ""
    await _admin(server_url, f"CREATE DATABASE {name}{template}")
    return f"{server_url}/{name}"


async def drop_database(database_url: str) -> None:
    server_url, name = database_url.rsplit("/", 1)
    await _admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
