"""Alembic environment: runs on a connection handed over by dialflow.store.migrate.

dialflow never lets Alembic open its own engine: the store runs the upgrade inside
its own transaction on its writer connection (``config.attributes["connection"]``),
so a migration is atomic and serialized with every other writer. Offline (``--sql``)
mode is not supported.
"""

from __future__ import annotations

from alembic import context

from dialflow.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "dialflow migrations run on a connection from dialflow.store.migrate "
        "(python -m dialflow.store.migrations --help)"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things: batch mode rebuilds the table ("move and copy").
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
