"""Flows: versioned documents (JSON or YAML), validated at upload with node paths."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from ...flows.model import FlowError, parse_document
from ...flows.validate import validate_flow
from ...store.base import Conflict
from ...store.models import FlowVersion
from ..errors import ApiError, not_found
from ..schemas import ErrorDetail, FlowList, FlowOut
from .deps import Auth, State, load_org

router = APIRouter(prefix="/v1/organizations/{org_id}/flows", tags=["flows"])

_FLOW_BODY = {
    "requestBody": {
        "required": True,
        "description": "A flow document (FLOWS.md), as JSON or as YAML",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


async def _read_document(request: Request) -> Any:
    raw = await request.body()
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and "json" not in media and "yaml" not in media:
        raise ApiError(415, "unsupported_media_type", "send application/json or application/yaml")
    try:
        # The flows loader caps size and depth and refuses YAML aliases and tags.
        return parse_document(raw, content_type)
    except FlowError as exc:
        raise ApiError(
            422,
            "invalid_flow",
            str(exc),
            details=[
                {"path": p.path or "body", "message": p.message, "code": p.code}
                for p in exc.problems
            ],
        ) from None


def _validated(document: Any, flow_id: str | None) -> tuple[dict[str, Any], list[ErrorDetail]]:
    if isinstance(document, dict) and flow_id is not None:
        if "id" not in document:
            document = {**document, "id": flow_id}
        elif document["id"] != flow_id:
            raise ApiError(
                422,
                "invalid_flow",
                "the document's id does not match the URL",
                details=[{"path": "id", "message": f"must be {flow_id!r}"}],
            )
    result = validate_flow(document)
    if result.errors or result.flow is None:
        raise ApiError(
            422,
            "invalid_flow",
            f"the flow has {len(result.errors)} problem(s)",
            details=[{"path": p.path, "message": p.message, "code": p.code} for p in result.errors],
        )
    warnings = [ErrorDetail(path=p.path, message=p.message) for p in result.warnings]
    return result.flow.to_document(), warnings


def _out(flow: FlowVersion, warnings: list[ErrorDetail] | None = None) -> FlowOut:
    return FlowOut(
        id=flow.flow_id,
        version=flow.version,
        name=flow.document.get("name"),
        created_at=flow.created_at,
        warnings=warnings or [],
        document=flow.document,
    )


@router.post("", status_code=201, response_model=FlowOut, openapi_extra=_FLOW_BODY)
async def create_flow(org_id: str, request: Request, state: State, principal: Auth) -> FlowOut:
    await load_org(state, principal, org_id)
    document, warnings = _validated(await _read_document(request), None)
    try:
        flow = await state.store.create_flow(org_id, document["id"], document)
    except Conflict:
        raise ApiError(
            409, "conflict", f"flow {document['id']!r} exists; PUT a new version"
        ) from None
    return _out(flow, warnings)


@router.put("/{flow_id}", response_model=FlowOut, openapi_extra=_FLOW_BODY)
async def put_flow(
    org_id: str, flow_id: str, request: Request, state: State, principal: Auth
) -> FlowOut:
    """A new version; calls already running keep the version they started with."""
    await load_org(state, principal, org_id)
    document, warnings = _validated(await _read_document(request), flow_id)
    flow = await state.store.add_flow_version(org_id, flow_id, document)
    if flow is None:
        raise not_found("flow")
    return _out(flow, warnings)


@router.get("", response_model=FlowList)
async def list_flows(org_id: str, state: State, principal: Auth) -> FlowList:
    await load_org(state, principal, org_id)
    return FlowList(data=[_out(f) for f in await state.store.list_flows(org_id)])


@router.get("/{flow_id}", response_model=FlowOut)
async def get_flow(
    org_id: str, flow_id: str, state: State, principal: Auth, version: int | None = None
) -> FlowOut:
    await load_org(state, principal, org_id)
    if version is not None and not 0 < version < 2**63:
        # No such version exists, and SQLite cannot even bind one beyond 64 bits (a 500).
        raise not_found("flow")
    flow = await state.store.get_flow(org_id, flow_id, version)
    if flow is None:
        raise not_found("flow")
    return _out(flow)


@router.delete("/{flow_id}", status_code=204)
async def delete_flow(org_id: str, flow_id: str, state: State, principal: Auth) -> Response:
    await load_org(state, principal, org_id)
    if not await state.store.delete_flow(org_id, flow_id):
        raise not_found("flow")
    return Response(status_code=204)
