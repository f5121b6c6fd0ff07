"""Organizations, API keys, trunks, flows and inbound numbers: portable Core queries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, and_, insert, select, update

from .base import Conflict
from .models import ApiKey, FlowVersion, InboundNumber, Organization, Trunk
from .schema import api_keys, flow_versions, flows, numbers, organizations, trunks
from .sql import SqlBase, utcnow


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


class CatalogMixin(SqlBase):
    """The slowly changing configuration of each organization."""

    # -- organizations and keys --------------------------------------------------------
    async def create_org(self, org: Organization) -> None:
        """Raises Conflict if the id exists."""
        async with self._write(f"organization {org.id!r}") as conn:
            await conn.execute(
                insert(organizations),
                {
                    "id": org.id,
                    "name": org.name,
                    "max_concurrent_calls": org.max_concurrent_calls,
                    "calls_per_second": org.calls_per_second,
                    "allowed_destinations": list(org.allowed_destinations),
                    "webhook_secret": org.webhook_secret,
                    "created_at": org.created_at or utcnow(),
                },
            )

    async def get_org(self, org_id: str) -> Organization | None:
        async with self._read() as conn:
            row = (
                await conn.execute(select(organizations).where(organizations.c.id == org_id))
            ).first()
        return None if row is None else _org(row)

    async def update_org(self, org: Organization) -> None:
        """Every field but the id and created_at (a no-op for an unknown id)."""
        async with self._write(f"organization {org.id!r}") as conn:
            await conn.execute(
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

    async def add_api_key(self, key: ApiKey) -> None:
        """Raises Conflict if the id or the key hash exists."""
        async with self._write(f"api key {key.id!r}") as conn:
            await conn.execute(
                insert(api_keys),
                {
                    "id": key.id,
                    "org_id": key.org_id,
                    "name": key.name,
                    "key_hash": key.key_hash,
                    "created_at": key.created_at or utcnow(),
                    "revoked_at": key.revoked_at,
                },
            )

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with this hash, or None."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(api_keys).where(
                        api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
                    )
                )
            ).first()
        return None if row is None else _api_key(row)

    async def revoke_api_key(self, org_id: str, key_id: str) -> bool:
        """False when no such unrevoked key in that organization."""
        async with self._write(f"api key {key_id!r}") as conn:
            result = await conn.execute(
                update(api_keys)
                .where(
                    api_keys.c.org_id == org_id,
                    api_keys.c.id == key_id,
                    api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
        return result.rowcount > 0

    # -- trunks ------------------------------------------------------------------------
    async def create_trunk(self, trunk: Trunk) -> None:
        """Raises Conflict if (org, id) exists. A default trunk clears the others' default."""
        async with self._write(f"trunk {trunk.org_id}/{trunk.id}") as conn:
            if trunk.is_default:
                # Cleared first, in the same transaction: the partial unique index
                # ux_trunks_default would refuse a second default otherwise.
                await conn.execute(
                    update(trunks)
                    .where(trunks.c.org_id == trunk.org_id, trunks.c.is_default.is_(True))
                    .values(is_default=False)
                )
            await conn.execute(
                insert(trunks),
                {
                    "org_id": trunk.org_id,
                    "id": trunk.id,
                    "proxy": trunk.proxy,
                    "username": trunk.username,
                    "password": trunk.password,
                    "from_user": trunk.from_user,
                    "is_default": trunk.is_default,
                    "created_at": trunk.created_at or utcnow(),
                },
            )

    async def update_trunk(self, trunk: Trunk) -> None:
        """Every field but the key and created_at. A default trunk clears the others'
        default flag (a no-op for an unknown trunk: nothing is cleared either)."""
        async with self._write(f"trunk {trunk.org_id}/{trunk.id}") as conn:
            key = (trunks.c.org_id == trunk.org_id, trunks.c.id == trunk.id)
            if (await conn.execute(select(trunks.c.id).where(*key))).first() is None:
                return
            if trunk.is_default:
                await conn.execute(
                    update(trunks)
                    .where(
                        trunks.c.org_id == trunk.org_id,
                        trunks.c.id != trunk.id,
                        trunks.c.is_default.is_(True),
                    )
                    .values(is_default=False)
                )
            await conn.execute(
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

    async def get_trunk(self, org_id: str, trunk_id: str) -> Trunk | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(trunks).where(trunks.c.org_id == org_id, trunks.c.id == trunk_id)
                )
            ).first()
        return None if row is None else _trunk(row)

    async def get_default_trunk(self, org_id: str) -> Trunk | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(trunks).where(trunks.c.org_id == org_id, trunks.c.is_default.is_(True))
                )
            ).first()
        return None if row is None else _trunk(row)

    async def list_trunks(self, org_id: str) -> list[Trunk]:
        """By id."""
        async with self._read() as conn:
            rows = await conn.execute(
                select(trunks).where(trunks.c.org_id == org_id).order_by(trunks.c.id)
            )
            return [_trunk(row) for row in rows]

    async def delete_trunk(self, org_id: str, trunk_id: str) -> bool:
        async with self._write(f"trunk {org_id}/{trunk_id}") as conn:
            result = await conn.execute(
                trunks.delete().where(trunks.c.org_id == org_id, trunks.c.id == trunk_id)
            )
        return result.rowcount > 0

    # -- flows -------------------------------------------------------------------------
    async def create_flow(
        self, org_id: str, flow_id: str, document: dict[str, object]
    ) -> FlowVersion:
        """Version 1 of a new flow. Raises Conflict if a live flow has that id.

        Re-creating a deleted flow's id starts a new live flow whose versions continue
        after the old highest: a (flow, version) pair always names one document, so
        records of calls that ran the old flow stay accurate.
        """
        now = utcnow()
        async with self._write(f"flow {org_id}/{flow_id}") as conn:
            row = (
                await conn.execute(
                    select(flows.c.latest_version, flows.c.deleted_at).where(
                        flows.c.org_id == org_id, flows.c.id == flow_id
                    )
                )
            ).first()
            if row is None:
                version = 1
                await conn.execute(
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
                result = await conn.execute(
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
            await conn.execute(
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

    async def add_flow_version(
        self, org_id: str, flow_id: str, document: dict[str, object]
    ) -> FlowVersion | None:
        """The next version; None when the flow does not exist (or was deleted)."""
        now = utcnow()
        async with self._write(f"flow {org_id}/{flow_id}") as conn:
            # One atomic increment (UPDATE … RETURNING: SQLite ≥ 3.35, PostgreSQL), so
            # concurrent PUTs get distinct versions without a read-modify-write race.
            version = (
                await conn.execute(
                    update(flows)
                    .where(
                        flows.c.org_id == org_id,
                        flows.c.id == flow_id,
                        flows.c.deleted_at.is_(None),
                    )
                    .values(latest_version=flows.c.latest_version + 1)
                    .returning(flows.c.latest_version)
                )
            ).scalar_one_or_none()
            if version is None:
                return None
            await conn.execute(
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

    async def get_flow(
        self, org_id: str, flow_id: str, version: int | None = None
    ) -> FlowVersion | None:
        """The latest version of a live flow, or a given version even of a deleted one."""
        if version is None:
            query = _LIVE_FLOW_VERSIONS.where(flows.c.org_id == org_id, flows.c.id == flow_id)
        else:
            query = select(flow_versions).where(
                flow_versions.c.org_id == org_id,
                flow_versions.c.flow_id == flow_id,
                flow_versions.c.version == version,
            )
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _flow_version(row)

    async def list_flows(self, org_id: str) -> list[FlowVersion]:
        """The latest version of every live flow, by id."""
        async with self._read() as conn:
            rows = await conn.execute(
                _LIVE_FLOW_VERSIONS.where(flows.c.org_id == org_id).order_by(flows.c.id)
            )
            return [_flow_version(row) for row in rows]

    async def delete_flow(self, org_id: str, flow_id: str) -> bool:
        """Marks the flow deleted; its versions stay for the calls that used them."""
        async with self._write(f"flow {org_id}/{flow_id}") as conn:
            result = await conn.execute(
                update(flows)
                .where(
                    flows.c.org_id == org_id,
                    flows.c.id == flow_id,
                    flows.c.deleted_at.is_(None),
                )
                .values(deleted_at=utcnow())
            )
        return result.rowcount > 0

    # -- inbound numbers ---------------------------------------------------------------
    async def add_number(self, number: InboundNumber) -> None:
        """Raises Conflict if the number is taken (by any organization)."""
        async with self._write(f"number {number.number!r}") as conn:
            await conn.execute(
                insert(numbers),
                {
                    "number": number.number,
                    "org_id": number.org_id,
                    "flow_id": number.flow_id,
                    "created_at": number.created_at or utcnow(),
                },
            )

    async def get_number(self, number: str) -> InboundNumber | None:
        async with self._read() as conn:
            row = (await conn.execute(select(numbers).where(numbers.c.number == number))).first()
        return None if row is None else _number(row)

    async def list_numbers(self, org_id: str) -> list[InboundNumber]:
        """By number."""
        async with self._read() as conn:
            rows = await conn.execute(
                select(numbers).where(numbers.c.org_id == org_id).order_by(numbers.c.number)
            )
            return [_number(row) for row in rows]

    async def delete_number(self, org_id: str, number: str) -> bool:
        async with self._write(f"number {number!r}") as conn:
            result = await conn.execute(
                numbers.delete().where(numbers.c.org_id == org_id, numbers.c.number == number)
            )
        return result.rowcount > 0
