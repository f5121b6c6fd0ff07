"""Schema migrations with Alembic, run programmatically (no alembic.ini needed).

The store calls :func:`upgrade_to_head` from ``open()`` on its own connection, inside
its own transaction (see ``migrations/env.py``). For developers, this module is also a
small command line::

    python -m dialflow.store.migrate revision -m "add calls.campaign" --autogenerate
    python -m dialflow.store.migrate upgrade --data-dir ./data
    python -m dialflow.store.migrate current --data-dir ./data
    python -m dialflow.store.migrate history
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine

SCRIPT_LOCATION = "dialflow.store:migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for dialflow's migrations, optionally bound to a
    connection that env.py will use."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    # Revision files are named 0001_initial.py, 0002_add_x.py, …
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions shipped with the package (parsed once per process)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError("no migrations found")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(connection: Connection) -> str | None:
    """Bring the database to the head revision; a no-op (no DDL) when it is there.

    Synchronous: the async store runs it with ``AsyncConnection.run_sync`` inside the
    transaction it already holds. Returns the revision upgraded from, or None when
    nothing was done.
    """
    current = current_revision(connection)
    if current == head_revision():
        return None
    command.upgrade(alembic_config(connection), "head")
    return current or "base"


def _next_rev_id() -> str:
    numbers = [int(rev.revision) for rev in script_directory().walk_revisions()]
    return f"{max(numbers, default=0) + 1:04d}"


def _revision(message: str, autogenerate: bool) -> None:
    config = alembic_config()
    if not autogenerate:
        command.revision(config, message=message, rev_id=_next_rev_id())
        return
    # Compare the models with a scratch SQLite database upgraded to the current head.
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            with engine.begin() as conn:
                upgrade_to_head(conn)
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.revision(config, message=message, autogenerate=True, rev_id=_next_rev_id())
        finally:
            engine.dispose()


async def _upgrade_store(database_url: str | None, data_dir: Path) -> None:
    from .factory import open_store

    store = await open_store(database_url, data_dir)
    await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dialflow.store.migrate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="write a new revision file (from a source checkout)")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true", help="diff schema.py vs head")
    for name, text in (("upgrade", "upgrade a database to head"), ("current", "show revision")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--database-url", default=None)
        cmd.add_argument("--data-dir", type=Path, default=Path("./data"))
    sub.add_parser("history", help="list revisions, newest first")
    args = parser.parse_args(argv)

    if args.cmd == "revision":
        if not re.fullmatch(r"[\w .,:+-]+", args.message):
            parser.error("keep the message to letters, digits and simple punctuation")
        _revision(args.message, args.autogenerate)
    elif args.cmd == "upgrade":
        asyncio.run(_upgrade_store(args.database_url, args.data_dir))
        print(head_revision())
    elif args.cmd == "current":
        from .factory import sqlite_path

        path = sqlite_path(args.database_url, args.data_dir)
        engine = create_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                print(current_revision(conn) or "(empty)")
        finally:
            engine.dispose()
    else:
        for script in script_directory().walk_revisions():
            print(f"{script.revision}  {script.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
