"""Organizations, API keys, trunks, flows and inbound numbers (store/sql_catalog.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from dialflow.store import (
    ApiKey,
    Conflict,
    InboundNumber,
    Organization,
    SqliteStore,
    StoreError,
    Trunk,
)
from dialflow.store.sql import _execute

from .conftest import at

# -- organizations ---------------------------------------------------------------------


async def test_org_round_trip_and_update(store: SqliteStore) -> None:
    org = Organization(
        "globex",
        "Globex",
        max_concurrent_calls=50,
        calls_per_second=2.5,
        allowed_destinations=["sip:*@127.0.0.1", "+1*"],
        webhook_secret="whsec_1",
        created_at=at(0),
    )
    await store.create_org(org)
    assert await store.get_org("globex") == org

    org.name = "Globex Corp"
    org.max_concurrent_calls = 7
    org.calls_per_second = 1.0
    org.allowed_destinations = []
    org.webhook_secret = "whsec_2"
    await store.update_org(org)
    assert await store.get_org("globex") == org


async def test_org_defaults_created_at_to_now_in_utc(store: SqliteStore) -> None:
    before = datetime.now(UTC)
    await store.create_org(Organization("initech", "Initech"))
    got = await store.get_org("initech")
    assert got is not None and got.created_at is not None
    assert got.created_at.tzinfo is UTC
    assert before <= got.created_at <= datetime.now(UTC)


async def test_duplicate_org_conflicts(store: SqliteStore) -> None:
    with pytest.raises(Conflict):
        await store.create_org(Organization("acme", "Again"))
    got = await store.get_org("acme")
    assert got is not None and got.name == "Acme"


async def test_unknown_org_is_none_and_update_is_a_noop(store: SqliteStore) -> None:
    assert await store.get_org("nope") is None
    await store.update_org(Organization("nope", "Nope"))
    assert await store.get_org("nope") is None


# -- API keys --------------------------------------------------------------------------


async def test_api_key_find_and_revoke(store: SqliteStore) -> None:
    key = ApiKey("k1", "acme", "backend", "a" * 64, created_at=at(0))
    await store.add_api_key(key)
    assert await store.find_api_key("a" * 64) == key
    assert await store.find_api_key("b" * 64) is None

    assert await store.revoke_api_key("other", "k1") is False  # not that org's key
    assert await store.revoke_api_key("acme", "k1") is True
    assert await store.find_api_key("a" * 64) is None
    assert await store.revoke_api_key("acme", "k1") is False  # already revoked
    assert await store.revoke_api_key("acme", "missing") is False


async def test_api_key_duplicates_conflict(store: SqliteStore) -> None:
    await store.add_api_key(ApiKey("k1", "acme", "backend", "a" * 64))
    with pytest.raises(Conflict):
        await store.add_api_key(ApiKey("k1", "acme", "again", "b" * 64))
    with pytest.raises(Conflict):
        await store.add_api_key(ApiKey("k2", "acme", "same hash", "a" * 64))


async def test_api_key_of_unknown_org_is_an_error_not_a_conflict(store: SqliteStore) -> None:
    with pytest.raises(StoreError) as info:
        await store.add_api_key(ApiKey("k1", "ghost", "backend", "a" * 64))
    assert not isinstance(info.value, Conflict)
    assert "foreign key" in str(info.value).lower()


# -- trunks ----------------------------------------------------------------------------


def trunk(trunk_id: str, *, default: bool = False, org: str = "acme") -> Trunk:
    return Trunk(
        trunk_id,
        org,
        f"sip:{trunk_id}.example.net:5060;transport=udp",
        username="u",
        password="p",
        from_user="+15550001111",
        is_default=default,
        created_at=at(0),
    )


async def defaults(store: SqliteStore, org: str = "acme") -> list[str]:
    return [t.id for t in await store.list_trunks(org) if t.is_default]


async def test_trunk_round_trip_list_and_delete(store: SqliteStore) -> None:
    await store.create_trunk(trunk("b"))
    await store.create_trunk(trunk("a"))
    assert await store.get_trunk("acme", "a") == trunk("a")
    assert await store.get_trunk("other", "a") is None
    assert [t.id for t in await store.list_trunks("acme")] == ["a", "b"]
    assert await store.list_trunks("other") == []
    assert await store.get_default_trunk("acme") is None

    assert await store.delete_trunk("other", "a") is False
    assert await store.delete_trunk("acme", "a") is True
    assert await store.delete_trunk("acme", "a") is False
    assert [t.id for t in await store.list_trunks("acme")] == ["b"]


async def test_trunk_ids_are_per_org_and_duplicates_conflict(store: SqliteStore) -> None:
    await store.create_trunk(trunk("main"))
    await store.create_trunk(trunk("main", org="other"))
    with pytest.raises(Conflict):
        await store.create_trunk(trunk("main"))


async def test_a_new_default_trunk_clears_the_old_default(store: SqliteStore) -> None:
    await store.create_trunk(trunk("a", default=True))
    await store.create_trunk(trunk("other-org-default", default=True, org="other"))
    await store.create_trunk(trunk("b", default=True))
    assert await defaults(store) == ["b"]
    default = await store.get_default_trunk("acme")
    assert default is not None and default.id == "b"
    # Another organization's default is untouched.
    assert await defaults(store, "other") == ["other-org-default"]


async def test_updating_a_trunk_to_default_clears_the_others(store: SqliteStore) -> None:
    await store.create_trunk(trunk("a", default=True))
    await store.create_trunk(trunk("b"))
    b = trunk("b", default=True)
    b.proxy = "sip:new.example.net"
    b.password = "secret2"
    await store.update_trunk(b)
    assert await defaults(store) == ["b"]
    assert await store.get_trunk("acme", "b") == b

    # Updating a non-default trunk leaves the default alone.
    a = trunk("a")
    a.from_user = "+15550002222"
    await store.update_trunk(a)
    assert await defaults(store) == ["b"]
    got = await store.get_trunk("acme", "a")
    assert got is not None and got.from_user == "+15550002222"


async def test_updating_an_unknown_trunk_changes_nothing(store: SqliteStore) -> None:
    await store.create_trunk(trunk("a", default=True))
    await store.update_trunk(trunk("ghost", default=True))
    assert await defaults(store) == ["a"]
    assert await store.get_trunk("acme", "ghost") is None


async def test_a_conflicting_default_trunk_does_not_clear_the_default(
    store: SqliteStore,
) -> None:
    await store.create_trunk(trunk("a", default=True))
    await store.create_trunk(trunk("b"))
    with pytest.raises(Conflict):
        await store.create_trunk(trunk("b", default=True))  # duplicate id: rolled back
    assert await defaults(store) == ["a"]


async def test_the_database_refuses_two_default_trunks(store: SqliteStore) -> None:
    """ux_trunks_default backs the code up even for writes that bypass it."""
    await store.create_trunk(trunk("a", default=True))
    await store.create_trunk(trunk("b"))
    with pytest.raises(StoreError):
        await store._run_write("raw", _execute, text("UPDATE trunks SET is_default = 1"))
    assert await defaults(store) == ["a"]


# -- flows -----------------------------------------------------------------------------


def doc(n: int) -> dict[str, object]:
    return {"id": "f", "start": "greet", "nodes": {"greet": {"type": "say", "text": f"v{n}"}}}


async def test_flow_versions_count_up(store: SqliteStore) -> None:
    v1 = await store.create_flow("acme", "f", doc(1))
    assert (v1.org_id, v1.flow_id, v1.version, v1.document) == ("acme", "f", 1, doc(1))
    v2 = await store.add_flow_version("acme", "f", doc(2))
    v3 = await store.add_flow_version("acme", "f", doc(3))
    assert v2 is not None and v3 is not None
    assert (v2.version, v3.version) == (2, 3)

    latest = await store.get_flow("acme", "f")
    assert latest == v3
    old = await store.get_flow("acme", "f", 1)
    assert old is not None and old.document == doc(1) and old.version == 1
    assert await store.get_flow("acme", "f", 4) is None
    assert await store.get_flow("other", "f") is None
    assert await store.add_flow_version("acme", "missing", doc(1)) is None


async def test_a_live_flow_id_conflicts(store: SqliteStore) -> None:
    await store.create_flow("acme", "f", doc(1))
    with pytest.raises(Conflict):
        await store.create_flow("acme", "f", doc(2))
    await store.create_flow("other", "f", doc(1))  # ids are per organization
    latest = await store.get_flow("acme", "f")
    assert latest is not None and latest.version == 1


async def test_list_flows_gives_the_latest_of_each_live_flow(store: SqliteStore) -> None:
    await store.create_flow("acme", "b", doc(1))
    await store.create_flow("acme", "a", doc(1))
    await store.add_flow_version("acme", "b", doc(2))
    await store.create_flow("acme", "gone", doc(1))
    await store.delete_flow("acme", "gone")
    await store.create_flow("other", "z", doc(1))
    listed = [(f.flow_id, f.version, f.document) for f in await store.list_flows("acme")]
    assert listed == [("a", 1, doc(1)), ("b", 2, doc(2))]


async def test_deleted_flow_keeps_its_versions(store: SqliteStore) -> None:
    await store.create_flow("acme", "f", doc(1))
    await store.add_flow_version("acme", "f", doc(2))
    assert await store.delete_flow("acme", "f") is True
    assert await store.delete_flow("acme", "f") is False
    assert await store.delete_flow("acme", "never") is False

    assert await store.get_flow("acme", "f") is None
    assert await store.add_flow_version("acme", "f", doc(3)) is None
    kept = await store.get_flow("acme", "f", 2)
    assert kept is not None and kept.document == doc(2)


async def test_recreating_a_deleted_flow_continues_its_versions(store: SqliteStore) -> None:
    await store.create_flow("acme", "f", doc(1))
    await store.add_flow_version("acme", "f", doc(2))
    await store.delete_flow("acme", "f")

    reborn = await store.create_flow("acme", "f", doc(30))
    assert reborn.version == 3  # never reuses (f, 1) or (f, 2)
    nxt = await store.add_flow_version("acme", "f", doc(40))
    assert nxt is not None and nxt.version == 4
    old = await store.get_flow("acme", "f", 1)
    assert old is not None and old.document == doc(1)
    assert [(f.flow_id, f.version) for f in await store.list_flows("acme")] == [("f", 4)]


async def test_concurrent_versions_are_distinct(store: SqliteStore) -> None:
    await store.create_flow("acme", "f", doc(1))
    made = await asyncio.gather(*(store.add_flow_version("acme", "f", doc(n)) for n in range(20)))
    assert sorted(v.version for v in made if v is not None) == list(range(2, 22))
    latest = await store.get_flow("acme", "f")
    assert latest is not None and latest.version == 21


# -- inbound numbers -------------------------------------------------------------------


async def test_numbers_are_unique_across_the_server(store: SqliteStore) -> None:
    number = InboundNumber("7001", "acme", "ivr", created_at=at(0))
    await store.add_number(number)
    with pytest.raises(Conflict):
        await store.add_number(InboundNumber("7001", "other", "ivr"))
    assert await store.get_number("7001") == number
    assert await store.get_number("7002") is None


async def test_numbers_list_and_delete(store: SqliteStore) -> None:
    await store.add_number(InboundNumber("7002", "acme", "b", created_at=at(0)))
    await store.add_number(InboundNumber("7001", "acme", "a", created_at=at(0)))
    await store.add_number(InboundNumber("8001", "other", "a", created_at=at(0)))
    assert [n.number for n in await store.list_numbers("acme")] == ["7001", "7002"]
    assert await store.delete_number("other", "7001") is False  # not theirs
    assert await store.delete_number("acme", "7001") is True
    assert await store.delete_number("acme", "7001") is False
    assert [n.number for n in await store.list_numbers("acme")] == ["7002"]


async def test_times_come_back_as_utc(store: SqliteStore) -> None:
    paris = timezone(timedelta(hours=2))
    created = datetime(2026, 6, 1, 14, 30, 15, 123456, tzinfo=paris)
    await store.add_number(InboundNumber("7001", "acme", "a", created_at=created))
    got = await store.get_number("7001")
    assert got is not None and got.created_at is not None
    assert got.created_at == created
    assert got.created_at.tzinfo is UTC
    assert got.created_at.hour == 12 and got.created_at.microsecond == 123456


async def test_naive_times_are_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="naive datetime"):
        await store.add_number(
            InboundNumber("7001", "acme", "a", created_at=datetime(2026, 1, 1, 12, 0))
        )
    assert await store.get_number("7001") is None
