"""The in-process catalog cache: hits skip the database, writes invalidate at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text, update

from dialflow.store import ApiKey, Organization, SqliteStore
from dialflow.store.catalog_cache import TtlCache
from dialflow.store.schema import organizations
from dialflow.store.sql import _execute


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_expires_and_refuses_stale_puts() -> None:
    clock = FakeClock()
    cache: TtlCache[str, int] = TtlCache(2.0, clock=clock)
    cache.put("a", 1, cache.generation)
    assert cache.get("a") == 1
    clock.now += 2.0
    assert cache.get("a") is None and len(cache) == 0

    before = cache.generation  # a read starts…
    cache.invalidate("a")  # …a write commits meanwhile…
    cache.put("a", 1, before)  # …the old value must not come back
    assert cache.get("a") is None
    cache.put("a", 2, cache.generation)
    assert cache.get("a") == 2
    cache.clear()
    assert cache.get("a") is None


def test_ttl_cache_is_bounded() -> None:
    cache: TtlCache[int, int] = TtlCache(10.0, max_entries=3)
    for i in range(4):
        cache.put(i, i, cache.generation)
    assert len(cache) <= 3 and cache.get(3) == 3


async def _write_behind_the_cache(store: SqliteStore, statement: Any) -> None:
    # What another process writing the same file does: no invalidation here.
    await store._run_write("test", _execute, statement)


async def test_org_is_cached_then_seen_again_after_the_ttl(store: SqliteStore) -> None:
    store.catalog_cache.orgs.ttl = 0.05
    first = await store.get_org("acme")
    assert first is not None and first.name == "Acme"
    await _write_behind_the_cache(
        store, update(organizations).where(organizations.c.id == "acme").values(name="Renamed")
    )
    cached = await store.get_org("acme")
    assert cached is not None and cached.name == "Acme"  # served from the cache
    await asyncio.sleep(0.06)
    fresh = await store.get_org("acme")
    assert fresh is not None and fresh.name == "Renamed"


async def test_cached_org_is_a_copy(store: SqliteStore) -> None:
    org = await store.get_org("acme")
    assert org is not None
    org.name = "changed but not saved"
    org.allowed_destinations.append("+1*")
    again = await store.get_org("acme")
    assert again is not None and again.name == "Acme" and again.allowed_destinations == []


async def test_update_org_invalidates(store: SqliteStore) -> None:
    org = await store.get_org("acme")
    assert org is not None
    org.webhook_secret = "whsec_rotated"
    await store.update_org(org)
    again = await store.get_org("acme")
    assert again is not None and again.webhook_secret == "whsec_rotated"


async def test_revoked_key_is_refused_at_once(store: SqliteStore) -> None:
    await store.add_api_key(ApiKey("k1", "acme", "backend", "a" * 64))
    await store.add_api_key(ApiKey("k2", "acme", "other", "b" * 64))
    assert await store.find_api_key("a" * 64) is not None
    assert await store.find_api_key("b" * 64) is not None  # both cached now
    assert await store.revoke_api_key("acme", "k1")
    assert await store.find_api_key("a" * 64) is None
    key = await store.find_api_key("b" * 64)
    assert key is not None and key.id == "k2"


async def test_unknown_key_is_not_cached(store: SqliteStore) -> None:
    assert await store.find_api_key("c" * 64) is None
    await store.add_api_key(ApiKey("k3", "acme", "late", "c" * 64))
    key = await store.find_api_key("c" * 64)
    assert key is not None and key.id == "k3"


async def test_flow_versions_and_delete_invalidate(store: SqliteStore) -> None:
    doc: dict[str, object] = {"id": "f", "start": "a", "nodes": {}}
    await store.create_flow("acme", "f", doc)
    v1 = await store.get_flow("acme", "f")
    assert v1 is not None and v1.version == 1
    await store.add_flow_version("acme", "f", {**doc, "name": "v2"})
    v2 = await store.get_flow("acme", "f")
    assert v2 is not None and v2.version == 2
    old = await store.get_flow("acme", "f", 1)
    assert old is not None and old.version == 1
    assert await store.delete_flow("acme", "f")
    assert await store.get_flow("acme", "f") is None
    await store.create_flow("acme", "f", doc)
    again = await store.get_flow("acme", "f")
    assert again is not None and again.version == 3


async def test_read_racing_a_write_does_not_cache_the_old_row(store: SqliteStore) -> None:
    store.catalog_cache.orgs.ttl = 60.0
    # A read that started before the update committed finishes after it.
    generation = store.catalog_cache.orgs.generation
    stale = Organization("acme", "Acme")
    org = await store.get_org("acme")
    assert org is not None
    org.name = "New name"
    await store.update_org(org)
    store.catalog_cache.orgs.put("acme", stale, generation)
    fresh = await store.get_org("acme")
    assert fresh is not None and fresh.name == "New name"


@pytest.mark.parametrize("ttl", [0.0])
async def test_ttl_zero_disables_the_cache(store: SqliteStore, ttl: float) -> None:
    store.catalog_cache.orgs.ttl = ttl
    await store.get_org("acme")
    await store._run_write(
        "test", _execute, text("UPDATE organizations SET name = 'X' WHERE id = 'acme'")
    )
    org = await store.get_org("acme")
    assert org is not None and org.name == "X"
