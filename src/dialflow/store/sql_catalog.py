"""Organizations, API keys, trunks, flows and inbound numbers: portable Core queries."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, insert, select, update

from .base import Conflict
from .catalog_cache import TtlCache
from .models import ApiKey, FlowVersion, InboundNumber, Organization, Trunk
from .schema import api_keys, flow_versions, flows, numbers, organizations, trunks
from .sql import SqlBase, _all, _execute, _first, _rowcount, utcnow


def _org(row: Row[Any]) -> Organization:
    return Organization(
        id=row.id,
        name=row.name,
        max_concurrent_calls=row.max_concurrent_calls,
        calls_per_second=row.calls_per_second,
        allowed_destinations=list(row.allowed_destinations),
        webhook_secret=row.webhook_secret,
        created_at=row.created_at,
    )


def _api_key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        org_id=row.org_id,
        name=row.name,
        key_hash=row.key_hash,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _trunk(row: Row[Any]) -> Trunk:
    return Trunk(
        id=row.id,
        org_id=row.org_id,
        proxy=row.proxy,
        username=row.username,
        password=row.password,
        from_user=row.from_user,
        is_default=bool(row.is_default),
        created_at=row.created_at,
    )


def _flow_version(row: Row[Any]) -> FlowVersion:
    return FlowVersion(
        org_id=row.org_id,
        flow_id=row.flow_id,
        version=row.version,
        document=row.document,
        created_at=row.created_at,
    )


def _number(row: Row[Any]) -> InboundNumber:
    return InboundNumber(
        number=row.number, org_id=row.org_id, flow_id=row.flow_id, created_at=row.created_at
    )


# The latest version of each live flow: flows ⋈ flow_versions on latest_version.
_LIVE_FLOW_VERSIONS = (
    select(flow_versions)
    .join(
        flows,
        and_(
            flows.c.org_id == flow_versions.c.org_id,
            flows.c.id == flow_versions.c.flow_id,
            flows.c.latest_version == flow_versions.c.version,
        ),
    )
    .where(flows.c.deleted_at.is_(None))
)


# -- query functions (run on the backend's connection; see sql.py) -------------------------


def _create_trunk(conn: Connection, values: dict[str, Any]) -> None:
    if values["is_default"]:
        # Cleared first, in the same transaction: the partial unique index
        # ux_trunks_default would refuse a second default otherwise.
        conn.execute(
            update(trunks)
            .where(trunks.c.org_id == values["org_id"], trunks.c.is_default.is_(True))
            .values(is_default=False)
        )
    conn.execute(insert(trunks), values)


def _update_trunk(conn: Connection, trunk: Trunk) -> None:
    key = (trunks.c.org_id == trunk.org_id, trunks.c.id == trunk.id)
    if conn.execute(select(trunks.c.id).where(*key)).first() is None:
        return  # unknown trunk: clear nothing either
    if trunk.is_default:
        conn.execute(
            update(trunks)
            .where(
                trunks.c.org_id == trunk.org_id,
                trunks.c.id != trunk.id,
                trunks.c.is_default.is_(True),
            )
            .values(is_default=False)
        )
    conn.execute(
        update(trunks)
        .where(*key)
        .values(
            proxy=trunk.proxy,
            username=trunk.username,
            password=trunk.password,
            from_user=trunk.from_user,
            is_default=trunk.is_default,
        )
    )


def _insert_version(
    conn: Connection,
    org_id: str,
    flow_id: str,
    version: int,
    document: dict[str, object],
    now: datetime,
) -> FlowVersion:
    conn.execute(
        insert(flow_versions),
        {
            "org_id": org_id,
            "flow_id": flow_id,
            "version": version,
            "document": document,
            "created_at": now,
        },
    )
    return FlowVersion(org_id, flow_id, version, dict(document), now)


def _create_flow(
    conn: Connection, org_id: str, flow_id: str, document: dict[str, object], now: datetime
) -> FlowVersion:
    row = conn.execute(
        select(flows.c.latest_version, flows.c.deleted_at).where(
            flows.c.org_id == org_id, flows.c.id == flow_id
        )
    ).first()
    if row is None:
        version = 1
        conn.execute(
            insert(flows),
            {
                "org_id": org_id,
                "id": flow_id,
                "latest_version": version,
                "deleted_at": None,
                "created_at": now,
            },
        )
    elif row.deleted_at is None:
        raise Conflict(f"flow {org_id}/{flow_id} already exists")
    else:
        # Guarded by deleted_at IS NOT NULL: of two concurrent re-creations
        # (PostgreSQL) the second updates nothing and conflicts.
        version = row.latest_version + 1
        result = conn.execute(
            update(flows)
            .where(
                flows.c.org_id == org_id,
                flows.c.id == flow_id,
                flows.c.deleted_at.is_not(None),
            )
            .values(latest_version=version, deleted_at=None, created_at=now)
        )
        if result.rowcount == 0:
            raise Conflict(f"flow {org_id}/{flow_id} already exists")
    return _insert_version(conn, org_id, flow_id, version, document, now)


def _add_flow_version(
    conn: Connection, org_id: str, flow_id: str, document: dict[str, object], now: datetime
) -> FlowVersion | None:
    # One atomic increment (UPDATE … RETURNING: SQLite ≥ 3.35, PostgreSQL), so
    # concurrent PUTs get distinct versions without a read-modify-write race.
    version = conn.execute(
        update(flows)
        .where(
            flows.c.org_id == org_id,
            flows.c.id == flow_id,
            flows.c.deleted_at.is_(None),
        )
        .values(latest_version=flows.c.latest_version + 1)
        .returning(flows.c.latest_version)
    ).scalar_one_or_none()
    if version is None:
        return None
    return _insert_version(conn, org_id, flow_id, version, document, now)


def _copy_org(org: Organization) -> Organization:
    # Callers change the object they get (PATCH): never hand out the cached one.
    return dataclasses.replace(org, allowed_destinations=list(org.allowed_destinations))


def _copy_key(key: ApiKey) -> ApiKey:
    return ApiKey(key.id, key.org_id, key.name, key.key_hash, key.created_at, key.revoked_at)


def _copy_flow(flow: FlowVersion) -> FlowVersion:
    # A version's document never changes once stored, so it is shared, not copied.
    return FlowVersion(flow.org_id, flow.flow_id, flow.version, flow.document, flow.created_at)


class _CatalogCaches:
    __slots__ = ("orgs", "keys", "flows")

    def __init__(self) -> None:
        self.orgs: TtlCache[str, Organization] = TtlCache()
        self.keys: TtlCache[str, ApiKey] = TtlCache()
        self.flows: TtlCache[tuple[str, str], FlowVersion] = TtlCache()


class CatalogMixin(SqlBase):
    """The slowly changing configuration of each organization.

    Organizations, API keys (by hash) and the latest version of each flow are read
    through a short in-process cache (:mod:`.catalog_cache`); every write here
    invalidates what it changed.
    """

    _catalog_caches: _CatalogCaches | None = None

    @property
    def catalog_cache(self) -> _CatalogCaches:
        caches = self._catalog_caches
        if caches is None:
            caches = self._catalog_caches = _CatalogCaches()
        return caches

    # -- organizations and keys --------------------------------------------------------
    async def create_org(self, org: Organization) -> None:
        """Raises Conflict if the id exists."""
        values = {
            "id": org.id,
            "name": org.name,
            "max_concurrent_calls": org.max_concurrent_calls,
            "calls_per_second": org.calls_per_second,
            "allowed_destinations": list(org.allowed_destinations),
            "webhook_secret": org.webhook_secret,
            "created_at": org.created_at or utcnow(),
        }
        await self._run_write(f"organization {org.id!r}", _execute, insert(organizations), values)

    async def get_org(self, org_id: str) -> Organization | None:
        cache = self.catalog_cache.orgs
        org = cache.get(org_id)
        if org is not None:
            return _copy_org(org)
        generation = cache.generation
        row = await self._run_read(
            _first, select(organizations).where(organizations.c.id == org_id)
        )
        if row is None:
            return None
        org = _org(row)
        cache.put(org_id, _copy_org(org), generation)
        return org

    async def update_org(self, org: Organization) -> None:
        """Every field but the id and created_at (a no-op for an unknown id)."""
        statement = (
            update(organizations)
            .where(organizations.c.id == org.id)
            .values(
                name=org.name,
                max_concurrent_calls=org.max_concurrent_calls,
                calls_per_second=org.calls_per_second,
                allowed_destinations=list(org.allowed_destinations),
                webhook_secret=org.webhook_secret,
            )
        )
        try:
            await self._run_write(f"organization {org.id!r}", _execute, statement)
        finally:
            self.catalog_cache.orgs.invalidate(org.id)

    async def add_api_key(self, key: ApiKey) -> None:
        """Raises Conflict if the id or the key hash exists."""
        values = {
            "id": key.id,
            "org_id": key.org_id,
            "name": key.name,
            "key_hash": key.key_hash,
            "created_at": key.created_at or utcnow(),
            "revoked_at": key.revoked_at,
        }
        await self._run_write(f"api key {key.id!r}", _execute, insert(api_keys), values)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with this hash, or None."""
        cache = self.catalog_cache.keys
        key = cache.get(key_hash)
        if key is not None:
            return _copy_key(key)
        generation = cache.generation
        row = await self._run_read(
            _first,
            select(api_keys).where(
                api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
            ),
        )
        if row is None:
            return None
        key = _api_key(row)
        cache.put(key_hash, _copy_key(key), generation)
        return key

    async def revoke_api_key(self, org_id: str, key_id: str) -> bool:
        """False when no such unrevoked key in that organization."""
        statement = (
            update(api_keys)
            .where(
                api_keys.c.org_id == org_id,
                api_keys.c.id == key_id,
                api_keys.c.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        try:
            return await self._run_write(f"api key {key_id!r}", _rowcount, statement) > 0
        finally:
            # The cache is by hash, which the caller does not give: drop every key.
            self.catalog_cache.keys.clear()

    # -- trunks ------------------------------------------------------------------------
    async def create_trunk(self, trunk: Trunk) -> None:
        """Raises Conflict if (org, id) exists. A default trunk clears the others' default."""
        values = {
            "org_id": trunk.org_id,
            "id": trunk.id,
            "proxy": trunk.proxy,
            "username": trunk.username,
            "password": trunk.password,
            "from_user": trunk.from_user,
            "is_default": trunk.is_default,
            "created_at": trunk.created_at or utcnow(),
        }
        await self._run_write(f"trunk {trunk.org_id}/{trunk.id}", _create_trunk, values)

    async def update_trunk(self, trunk: Trunk) -> None:
        """Every field but the key and created_at. A default trunk clears the others'
        default flag (a no-op for an unknown trunk: nothing is cleared either)."""
        await self._run_write(f"trunk {trunk.org_id}/{trunk.id}", _update_trunk, trunk)

    async def get_trunk(self, org_id: str, trunk_id: str) -> Trunk | None:
        row = await self._run_read(
            _first, select(trunks).where(trunks.c.org_id == org_id, trunks.c.id == trunk_id)
        )
        return None if row is None else _trunk(row)

    async def get_default_trunk(self, org_id: str) -> Trunk | None:
        row = await self._run_read(
            _first,
            select(trunks).where(trunks.c.org_id == org_id, trunks.c.is_default.is_(True)),
        )
        return None if row is None else _trunk(row)

    async def list_trunks(self, org_id: str) -> list[Trunk]:
        """By id."""
        rows = await self._run_read(
            _all, select(trunks).where(trunks.c.org_id == org_id).order_by(trunks.c.id)
        )
        return [_trunk(row) for row in rows]

    async def delete_trunk(self, org_id: str, trunk_id: str) -> bool:
        statement = trunks.delete().where(trunks.c.org_id == org_id, trunks.c.id == trunk_id)
        return await self._run_write(f"trunk {org_id}/{trunk_id}", _rowcount, statement) > 0

    # -- flows -------------------------------------------------------------------------
    async def create_flow(
        self, org_id: str, flow_id: str, document: dict[str, object]
    ) -> FlowVersion:
        """Version 1 of a new flow. Raises Conflict if a live flow has that id.

        Re-creating a deleted flow's id starts a new live flow whose versions continue
        after the old highest: a (flow, version) pair always names one document, so
        records of calls that ran the old flow stay accurate.
        """
        try:
            return await self._run_write(
                f"flow {org_id}/{flow_id}", _create_flow, org_id, flow_id, document, utcnow()
            )
        finally:
            self.catalog_cache.flows.invalidate((org_id, flow_id))

    async def add_flow_version(
        self, org_id: str, flow_id: str, document: dict[str, object]
    ) -> FlowVersion | None:
        """The next version; None when the flow does not exist (or was deleted)."""
        try:
            return await self._run_write(
                f"flow {org_id}/{flow_id}", _add_flow_version, org_id, flow_id, document, utcnow()
            )
        finally:
            self.catalog_cache.flows.invalidate((org_id, flow_id))

    async def get_flow(
        self, org_id: str, flow_id: str, version: int | None = None
    ) -> FlowVersion | None:
        """The latest version of a live flow, or a given version even of a deleted one."""
        cache = self.catalog_cache.flows
        generation = cache.generation
        if version is None:
            cached = cache.get((org_id, flow_id))
            if cached is not None:
                return _copy_flow(cached)
            query = _LIVE_FLOW_VERSIONS.where(flows.c.org_id == org_id, flows.c.id == flow_id)
        else:
            query = select(flow_versions).where(
                flow_versions.c.org_id == org_id,
                flow_versions.c.flow_id == flow_id,
                flow_versions.c.version == version,
            )
        row = await self._run_read(_first, query)
        if row is None:
            return None
        flow = _flow_version(row)
        if version is None:
            cache.put((org_id, flow_id), _copy_flow(flow), generation)
        return flow

    async def list_flows(self, org_id: str) -> list[FlowVersion]:
        """The latest version of every live flow, by id."""
        rows = await self._run_read(
            _all, _LIVE_FLOW_VERSIONS.where(flows.c.org_id == org_id).order_by(flows.c.id)
        )
        return [_flow_version(row) for row in rows]

    async def delete_flow(self, org_id: str, flow_id: str) -> bool:
        """Marks the flow deleted; its versions stay for the calls that used them."""
        statement = (
            update(flows)
            .where(
                flows.c.org_id == org_id,
                flows.c.id == flow_id,
                flows.c.deleted_at.is_(None),
            )
            .values(deleted_at=utcnow())
        )
        try:
            return await self._run_write(f"flow {org_id}/{flow_id}", _rowcount, statement) > 0
        finally:
            self.catalog_cache.flows.invalidate((org_id, flow_id))

    # -- inbound numbers ---------------------------------------------------------------
    async def add_number(self, number: InboundNumber) -> None:
        """Raises Conflict if the number is taken (by any organization)."""
        values = {
            "number": number.number,
            "org_id": number.org_id,
            "flow_id": number.flow_id,
            "created_at": number.created_at or utcnow(),
        }
        await self._run_write(f"number {number.number!r}", _execute, insert(numbers), values)

    async def get_number(self, number: str) -> InboundNumber | None:
        row = await self._run_read(_first, select(numbers).where(numbers.c.number == number))
        return None if row is None else _number(row)

    async def list_numbers(self, org_id: str) -> list[InboundNumber]:
        """By number."""
        rows = await self._run_read(
            _all, select(numbers).where(numbers.c.org_id == org_id).order_by(numbers.c.number)
        )
        return [_number(row) for row in rows]

    async def delete_number(self, org_id: str, number: str) -> bool:
        statement = numbers.delete().where(numbers.c.org_id == org_id, numbers.c.number == number)
        return await self._run_write(f"number {number!r}", _rowcount, statement) > 0
