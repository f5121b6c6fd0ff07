"""Organizations, API keys, trunks and inbound numbers."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Response

from ...sip.errors import SipParseError
from ...sip.uri import SipUri, parse_uri
from ...store.base import Conflict
from ...store.models import ApiKey, InboundNumber, Organization, Trunk
from ..auth import hash_key, new_api_key
from ..errors import ApiError, not_found, validation_error
from ..schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    NumberCreate,
    NumberList,
    NumberOut,
    OrganizationCreate,
    OrganizationOut,
    OrganizationPatch,
    TrunkCreate,
    TrunkList,
    TrunkOut,
    TrunkPatch,
    WebhookSecretOut,
)
from .deps import Auth, State, load_org

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])


def _new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _org_out(org: Organization, *, with_secret: bool = False) -> OrganizationOut:
    return OrganizationOut(
        id=org.id,
        name=org.name,
        max_concurrent_calls=org.max_concurrent_calls,
        calls_per_second=org.calls_per_second,
        allowed_destinations=org.allowed_destinations,
        created_at=org.created_at,
        webhook_secret=org.webhook_secret if with_secret else None,
    )


@router.post("", status_code=201, response_model=OrganizationOut, response_model_exclude_none=True)
async def create_organization(
    body: OrganizationCreate, state: State, principal: Auth
) -> OrganizationOut:
    principal.require_admin()
    org = Organization(
        id=body.id,
        name=body.name,
        max_concurrent_calls=body.max_concurrent_calls,
        calls_per_second=body.calls_per_second,
        allowed_destinations=body.allowed_destinations,
        webhook_secret=_new_secret(),
    )
    try:
        await state.store.create_org(org)
    except Conflict:
        raise ApiError(409, "conflict", f"organization {body.id!r} exists") from None
    stored = await state.store.get_org(org.id)
    return _org_out(stored or org, with_secret=True)


@router.get("/{org_id}", response_model=OrganizationOut, response_model_exclude_none=True)
async def get_organization(org_id: str, state: State, principal: Auth) -> OrganizationOut:
    return _org_out(await load_org(state, principal, org_id))


@router.patch("/{org_id}", response_model=OrganizationOut, response_model_exclude_none=True)
async def patch_organization(
    org_id: str, body: OrganizationPatch, state: State, principal: Auth
) -> OrganizationOut:
    org = await load_org(state, principal, org_id)
    principal.require_admin()  # limits and policy are the operator's, not the tenant's
    changes = body.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is not None:
            setattr(org, key, value)
    await state.store.update_org(org)
    return _org_out(org)


@router.post("/{org_id}/webhook-secret", response_model=WebhookSecretOut)
async def rotate_webhook_secret(org_id: str, state: State, principal: Auth) -> WebhookSecretOut:
    org = await load_org(state, principal, org_id)
    org.webhook_secret = _new_secret()
    await state.store.update_org(org)
    return WebhookSecretOut(webhook_secret=org.webhook_secret)


@router.post("/{org_id}/api-keys", status_code=201, response_model=ApiKeyOut)
async def create_api_key(
    org_id: str, body: ApiKeyCreate, state: State, principal: Auth
) -> ApiKeyOut:
    await load_org(state, principal, org_id)
    principal.require_admin()
    key = new_api_key()
    record = ApiKey(
        id="key_" + secrets.token_hex(8), org_id=org_id, name=body.name, key_hash=hash_key(key)
    )
    await state.store.add_api_key(record)
    return ApiKeyOut(id=record.id, name=record.name, key=key, created_at=record.created_at)


@router.delete("/{org_id}/api-keys/{key_id}", status_code=204)
async def revoke_api_key(org_id: str, key_id: str, state: State, principal: Auth) -> Response:
    await load_org(state, principal, org_id)
    principal.require_admin()
    if not await state.store.revoke_api_key(org_id, key_id):
        raise not_found("api key")
    return Response(status_code=204)


# -- trunks


def _check_proxy(proxy: str) -> str:
    try:
        uri = parse_uri(proxy)
    except SipParseError as exc:
        raise validation_error("body.proxy", f"not a SIP URI: {exc}") from None
    if not isinstance(uri, SipUri) or uri.scheme != "sip":
        raise validation_error("body.proxy", "the proxy must be a sip: URI")
    if uri.transport not in ("udp", "tcp"):
        raise validation_error("body.proxy", "transport must be udp or tcp")
    return str(uri)


def _trunk_out(trunk: Trunk) -> TrunkOut:
    return TrunkOut(
        id=trunk.id,
        proxy=trunk.proxy,
        username=trunk.username,
        has_password=bool(trunk.password),
        from_user=trunk.from_user,
        default=trunk.is_default,
        created_at=trunk.created_at,
    )


@router.post("/{org_id}/trunks", status_code=201, response_model=TrunkOut, tags=["trunks"])
async def create_trunk(org_id: str, body: TrunkCreate, state: State, principal: Auth) -> TrunkOut:
    await load_org(state, principal, org_id)
    trunk = Trunk(
        id=body.id,
        org_id=org_id,
        proxy=_check_proxy(body.proxy),
        username=body.username,
        password=body.password,
        from_user=body.from_user,
        is_default=body.default,
    )
    try:
        await state.store.create_trunk(trunk)
    except Conflict:
        raise ApiError(409, "conflict", f"trunk {body.id!r} exists") from None
    return _trunk_out((await state.store.get_trunk(org_id, trunk.id)) or trunk)


@router.get("/{org_id}/trunks", response_model=TrunkList, tags=["trunks"])
async def list_trunks(org_id: str, state: State, principal: Auth) -> TrunkList:
    await load_org(state, principal, org_id)
    return TrunkList(data=[_trunk_out(t) for t in await state.store.list_trunks(org_id)])


@router.get("/{org_id}/trunks/{trunk_id}", response_model=TrunkOut, tags=["trunks"])
async def get_trunk(org_id: str, trunk_id: str, state: State, principal: Auth) -> TrunkOut:
    await load_org(state, principal, org_id)
    trunk = await state.store.get_trunk(org_id, trunk_id)
    if trunk is None:
        raise not_found("trunk")
    return _trunk_out(trunk)


@router.patch("/{org_id}/trunks/{trunk_id}", response_model=TrunkOut, tags=["trunks"])
async def patch_trunk(
    org_id: str, trunk_id: str, body: TrunkPatch, state: State, principal: Auth
) -> TrunkOut:
    await load_org(state, principal, org_id)
    trunk = await state.store.get_trunk(org_id, trunk_id)
    if trunk is None:
        raise not_found("trunk")
    changes = body.model_dump(exclude_unset=True)
    if changes.get("proxy") is not None:
        trunk.proxy = _check_proxy(changes["proxy"])
    for name in ("username", "password", "from_user"):
        if name in changes:
            setattr(trunk, name, changes[name])
    if changes.get("default") is not None:
        trunk.is_default = bool(changes["default"])
    await state.store.update_trunk(trunk)
    return _trunk_out(trunk)


@router.delete("/{org_id}/trunks/{trunk_id}", status_code=204, tags=["trunks"])
async def delete_trunk(org_id: str, trunk_id: str, state: State, principal: Auth) -> Response:
    await load_org(state, principal, org_id)
    if not await state.store.delete_trunk(org_id, trunk_id):
        raise not_found("trunk")
    return Response(status_code=204)


# -- inbound numbers


def _number_out(state: State, number: InboundNumber) -> NumberOut:
    port = state.endpoint.port
    host = state.endpoint.contact_host
    return NumberOut(
        number=number.number,
        flow_id=number.flow_id,
        sip_uri=f"sip:{number.number}@{host}:{port}",
        created_at=number.created_at,
    )


@router.post("/{org_id}/numbers", status_code=201, response_model=NumberOut, tags=["numbers"])
async def create_number(
    org_id: str, body: NumberCreate, state: State, principal: Auth
) -> NumberOut:
    await load_org(state, principal, org_id)
    if await state.store.get_flow(org_id, body.flow_id) is None:
        raise validation_error("body.flowId", f"no flow {body.flow_id!r}", "unknown_flow")
    number = InboundNumber(number=body.number, org_id=org_id, flow_id=body.flow_id)
    try:
        await state.store.add_number(number)
    except Conflict:
        raise ApiError(409, "conflict", f"number {body.number!r} is taken") from None
    return _number_out(state, (await state.store.get_number(body.number)) or number)


@router.get("/{org_id}/numbers", response_model=NumberList, tags=["numbers"])
async def list_numbers(org_id: str, state: State, principal: Auth) -> NumberList:
    await load_org(state, principal, org_id)
    return NumberList(data=[_number_out(state, n) for n in await state.store.list_numbers(org_id)])


@router.get("/{org_id}/numbers/{number}", response_model=NumberOut, tags=["numbers"])
async def get_number(org_id: str, number: str, state: State, principal: Auth) -> NumberOut:
    await load_org(state, principal, org_id)
    found = await state.store.get_number(number)
    if found is None or found.org_id != org_id:
        raise not_found("number")
    return _number_out(state, found)


@router.delete("/{org_id}/numbers/{number}", status_code=204, tags=["numbers"])
async def delete_number(org_id: str, number: str, state: State, principal: Auth) -> Response:
    await load_org(state, principal, org_id)
    if not await state.store.delete_number(org_id, number):
        raise not_found("number")
    return Response(status_code=204)
