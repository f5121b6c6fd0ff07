"""What only the PostgreSQL backend does: migrating under a lock, its errors."""

from __future__ import annotations

import asyncio

import pytest

from dialflow.store import Organization, StoreError
from dialflow.store.factory import open_store
from dialflow.store.migrate import head_revision
from dialflow.store.postgres import PostgresStore

from ...pg_server import drop_database, new_database


async def test_nodes_starting_together_migrate_once(postgres_server: str) -> None:
    url = await new_database(postgres_server, migrated=False)
    stores = [PostgresStore(url) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await stores[0].create_org(Organization("acme", "Acme"))
        assert (await stores[3].get_org("acme")) is not None
        revision = await stores[1]._run_read(
            lambda conn: conn.exec_driver_sql(
                "SELECT version_num FROM alembic_version"
            ).scalar_one()
        )
        assert revision == head_revision()
    finally:
        for s in stores:
            await s.close()
        await drop_database(url)


async def test_open_store_takes_postgresql_urls(postgres_server: str, tmp_path: object) -> None:
    url = await new_database(postgres_server)
    store = await open_store(url, tmp_path)  # type: ignore[arg-type]
    try:
        assert isinstance(store, PostgresStore)
        assert await store.healthy()
    finally:
        await store.close()
        await drop_database(url)
    assert not await store.healthy()


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    store = PostgresStore("postgresql://dialflow:s3cret@127.0.0.1:1/dialflow")
    with pytest.raises(StoreError, match="cannot open the database") as info:
        await store.open()
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(store)


async def test_sslmode_in_the_url_reaches_asyncpg(postgres_database: str) -> None:
    # The test server has no TLS: sslmode=require must make the connection fail (proof
    # that it reached the driver), as a StoreError, not asyncpg's TypeError.
    store = PostgresStore(postgres_database + "?sslmode=require")
    with pytest.raises(StoreError, match="SSL"):
        await store.open()
    store = PostgresStore(postgres_database + "?sslmode=prefer")
    await store.open()
    try:
        assert await store.healthy()
    finally:
        await store.close()
