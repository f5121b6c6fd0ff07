"""Schema migrations with Alembic, run programmatically (no alembic.ini needed).

The store calls :func:`upgrade_to_head` from ``open()`` on its own connection, inside
its own transaction (see ``migrations/env.py``). For developers, ``python -m
dialflow.store.migrations`` is a small command line over these functions (new
revision, upgrade, current, history): see ``migrations/__main__.py``.
"""

from __future__ import annotations

import functools
import tempfile
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

    Synchronous, inside the transaction the caller already holds (SQLite: on the writer
    thread, see ``sqlite._migrate``; an async engine would use ``run_sync``). Returns the
    revision upgraded from, or None when nothing was done.
    """
    current = current_revision(connection)
    if current == head_revision():
        return None
    command.upgrade(alembic_config(connection), "head")
    return current or "base"


def next_revision_id() -> str:
    """0001, 0002, …: one more than the highest revision shipped."""
    numbers = [int(rev.revision) for rev in script_directory().walk_revisions()]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(message: str, autogenerate: bool) -> None:
    """Write the next revision file into the source tree's ``migrations/versions``."""
    config = alembic_config()
    if not autogenerate:
        command.revision(config, message=message, rev_id=next_revision_id())
        return
    # Compare the models with a scratch SQLite database upgraded to the current head.
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            with engine.begin() as conn:
                upgrade_to_head(conn)
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.revision(
                    config, message=message, autogenerate=True, rev_id=next_revision_id()
                )
        finally:
            engine.dispose()
