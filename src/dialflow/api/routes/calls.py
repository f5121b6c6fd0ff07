"""Calls: create (sync, poll, webhook), read, list (JSON or CSV), cancel, recording, deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from redis.exceptions import RedisError

from ...calls.limits import LimitExceeded, LimitsUnavailable
from ...calls.options import AmdOptions, CallOptions
from ...calls.policy import DestinationError, DestinationNotAllowed
from ...calls.service import NoTrunk
from ...calls.session import call_view, event_view, iso, utcnow
from ...cluster.bus import LockTimeout
from ...store.cursor import decode_cursor
from ...store.models import CallRecord, CallStatus, IdempotencyRecord
from ...webhooks.urls import WebhookUrlNotAllowed, check_webhook_url_async
from ..app import AppState
from ..auth import Principal
from ..errors import ApiError, not_found, validation_error
from ..schemas import CallCreate, CallEventList, CallList, CallOut, WebhookAttemptList
from .deps import Auth, State, load_org

router = APIRouter(prefix="/v1/organizations/{org_id}", tags=["calls"])

IDEMPOTENCY_WINDOW = timedelta(hours=24)


def _options(body: CallCreate) -> CallOptions:
    amd = None
    if body.amd is not None and body.amd.enabled:
        amd = AmdOptions(
            enabled=True,
            mode=body.amd.mode,
            timeout_ms=body.amd.timeout_ms,
            detect_beep=body.amd.detect_beep,
            run_flow_on=tuple(body.amd.run_flow_on),
        )
    return CallOptions(
        to=body.to,
        from_=body.from_,
        mode=body.mode,
        webhook_url=body.webhook_url,
        ring_timeout=float(body.ring_timeout),
        max_duration=float(body.max_duration),
        sync_timeout=float(body.sync_timeout),
        amd=amd,
        variables=dict(body.variables),
        sip_headers=dict(body.sip_headers),
        trunk=body.trunk,
        record=body.record,
    )


def _body_hash(body: CallCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _location(org_id: str, session_id: str) -> str:
    return f"/v1/organizations/{org_id}/calls/{session_id}"


async def _current(state: AppState, org_id: str, session_id: str) -> CallRecord | None:
    session = state.service.live(session_id)
    if session is not None:
        return session.record if session.record.org_id == org_id else None
    return await state.store.get_call(org_id, session_id)


@router.post(
    "/flows/{flow_id}/calls",
    response_model=CallOut,
    status_code=202,
    responses={200: {"model": CallOut, "description": "sync mode: the call ended in time"}},
)
async def create_call(
    org_id: str,
    flow_id: str,
    body: CallCreate,
    state: State,
    principal: Auth,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    return await place_call(state, principal, org_id, flow_id, body, idempotency_key)


async def place_call(
    state: AppState,
    principal: Principal,
    org_id: str,
    flow_id: str,
    body: CallCreate,
    idempotency_key: str | None,
) -> JSONResponse:
    """The whole of ``POST …/calls`` once the request is parsed (also used by
    :class:`dialflow.api.fastpath.CreateCallFastPath`). Every refusal is an ApiError
    raised before anything is stored."""
    org = await load_org(state, principal, org_id)
    flow = await state.store.get_flow(org_id, flow_id)
    if flow is None:
        raise not_found("flow")
    if body.mode == "webhook" and not body.webhook_url:
        raise validation_error("body.webhookUrl", "webhook mode needs a webhookUrl")
    if body.webhook_url:
        try:
            await check_webhook_url_async(
                body.webhook_url, allow_private=state.settings.webhook_allow_private
            )
        except WebhookUrlNotAllowed as exc:
            raise validation_error("body.webhookUrl", str(exc), "webhook_url_not_allowed") from None
    options = _options(body)
    request_doc = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    if idempotency_key is None:
        session = await _create(state, org, flow, options, request_doc, None)
    else:
        lock = state.idempotency_locks.setdefault((org_id, idempotency_key), asyncio.Lock())
        async with lock, _cluster_lock(state, f"idem:{org_id}:{idempotency_key}"):
            since = utcnow() - IDEMPOTENCY_WINDOW
            existing = await state.store.get_idempotency(org_id, idempotency_key, since)
            digest = _body_hash(body)
            if existing is not None:
                if existing.body_hash != digest:
                    raise ApiError(
                        409,
                        "idempotency_conflict",
                        "this Idempotency-Key was used with a different body",
                    )
                record = await _current(state, org_id, existing.session_id)
                if record is None:
                    raise not_found("call")
                code = 200 if body.mode == "sync" and record.status.is_terminal else 202
                return _call_response(record, code, replayed=True)
            session = await _create(state, org, flow, options, request_doc, idempotency_key)
            await state.store.put_idempotency(
                IdempotencyRecord(org_id, idempotency_key, digest, session.id, utcnow())
            )
        if not lock.locked():
            state.idempotency_locks.pop((org_id, idempotency_key), None)
    if body.mode == "sync":
        try:
            await asyncio.wait_for(session.ended.wait(), timeout=options.sync_timeout)
        except TimeoutError:
            return _call_response(session.record, 202)
        return _call_response(session.record, 200)
    return _call_response(session.record, 202)


async def _create(
    state: AppState,
    org: Any,
    flow: Any,
    options: CallOptions,
    request_doc: dict[str, Any],
    idempotency_key: str | None,
) -> Any:
    try:
        return await state.service.create_call(
            org, flow, options, request=request_doc, idempotency_key=idempotency_key
        )
    except DestinationError as exc:
        raise validation_error("body.to", str(exc), "invalid_destination") from None
    except DestinationNotAllowed as exc:
        raise ApiError(403, "destination_not_allowed", exc.reason) from None
    except NoTrunk as exc:
        raise validation_error(
            "body.trunk", f"{exc}: add a trunk for phone numbers", "no_trunk"
        ) from None
    except LimitExceeded as exc:
        raise ApiError(
            429, "rate_limited", str(exc), headers={"Retry-After": str(exc.retry_after)}
        ) from None
    except LimitsUnavailable:
        raise ApiError(
            503,
            "unavailable",
            "the shared call limits cannot be checked (Redis unreachable); try again",
            headers={"Retry-After": "1"},
        ) from None


def _call_response(record: CallRecord, status: int, *, replayed: bool = False) -> JSONResponse:
    headers = {"Location": _location(record.org_id, record.session_id)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(call_view(record), status_code=status, headers=headers)


@router.get("/calls/{session_id}", response_model=CallOut)
async def get_call(org_id: str, session_id: str, state: State, principal: Auth) -> JSONResponse:
    await load_org(state, principal, org_id)
    record = await _current(state, org_id, session_id)
    if record is None:
        raise not_found("call")
    return JSONResponse(call_view(record))


@router.delete("/calls/{session_id}", response_model=CallOut)
async def cancel_call(org_id: str, session_id: str, state: State, principal: Auth) -> JSONResponse:
    """Cancel before answer (CANCEL → canceled) or hang up after (BYE → completed, hangupBy api)."""
    await load_org(state, principal, org_id)
    session = state.service.live(session_id)
    if session is not None and session.record.org_id == org_id:
        await state.service.hangup(session, by="api")
        return JSONResponse(call_view(session.record))
    record = await state.store.get_call(org_id, session_id)
    if record is None:
        raise not_found("call")
    cluster = state.cluster
    if (
        cluster is not None
        and not record.status.is_terminal
        and record.node_id
        and record.node_id != cluster.node_id
        and await cluster.request_hangup(record.node_id, org_id, session_id)
    ):
        # Another node runs the call: it hung up and stored the final row.
        record = await state.store.get_call(org_id, session_id) or record
    return JSONResponse(call_view(record))


@contextlib.asynccontextmanager
async def _cluster_lock(state: AppState, name: str) -> AsyncIterator[None]:
    """The same Idempotency-Key sent to two nodes at once must create one call."""
    if state.cluster is None:
        yield
        return
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(state.cluster.bus.lock(name, ttl_ms=30_000, wait=10.0))
        except (LockTimeout, RedisError, OSError) as exc:
            raise ApiError(
                503,
                "unavailable",
                f"cannot lock the Idempotency-Key across nodes: {exc}",
                headers={"Retry-After": "1"},
            ) from None
        yield


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise validation_error(f"query.{name}", "use an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise validation_error(f"query.{name}", "the time needs a zone (Z or +hh:mm)")
    return parsed


CSV_COLUMNS = [
    "sessionId",
    "orgId",
    "flowId",
    "flowVersion",
    "direction",
    "mode",
    "to",
    "from",
    "status",
    "amdResult",
    "amdDecisionMs",
    "beep",
    "sipCallId",
    "sipFinalCode",
    "sipFinalReason",
    "hangupBy",
    "createdAt",
    "dialedAt",
    "ringingAt",
    "answeredAt",
    "endedAt",
    "durationMs",
    "flowOutcome",
    "flowPath",
    "errorCode",
    "errorMessage",
]


def _csv_row(record: CallRecord) -> list[Any]:
    view = call_view(record)
    amd = view["amd"] or {}
    error = view["error"] or {}
    return [
        view["sessionId"],
        view["orgId"],
        view["flowId"],
        view["flowVersion"],
        view["direction"],
        view["mode"],
        view["to"],
        view["from"],
        view["status"],
        amd.get("result"),
        amd.get("decisionMs"),
        amd.get("beep"),
        view["sip"]["callId"],
        view["sip"]["finalCode"],
        view["sip"]["finalReason"],
        view["hangupBy"],
        view["createdAt"],
        view["dialedAt"],
        view["ringingAt"],
        view["answeredAt"],
        view["endedAt"],
        view["durationMs"],
        view["flow"]["outcome"],
        " > ".join(view["flow"]["path"]),
        error.get("code"),
        error.get("message"),
    ]


@router.get(
    "/calls",
    response_model=CallList,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with Accept: text/csv"}
    },
)
async def list_calls(
    org_id: str,
    request: Request,
    state: State,
    principal: Auth,
    status: CallStatus | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    direction: Annotated[str | None, Query(pattern="^(outbound|inbound)$")] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    cursor: str | None = None,
) -> Any:
    await load_org(state, principal, org_id)
    created_from = _parse_time(from_, "from")
    created_to = _parse_time(to, "to")
    if cursor is not None:
        try:
            decode_cursor(cursor)  # refuse a bad cursor before a CSV stream has started
        except ValueError:
            raise validation_error("query.cursor", "not a cursor from this API") from None
    filters: dict[str, Any] = dict(
        status=status,
        flow_id=flow_id,
        direction=direction,
        created_from=created_from,
        created_to=created_to,
    )
    await state.service.writer.flush()  # a list right after a change sees it
    if "text/csv" in request.headers.get("accept", ""):
        return StreamingResponse(
            _csv_stream(state, org_id, filters, limit, cursor),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="calls-{org_id}.csv"'},
        )
    try:
        records, next_cursor = await state.store.list_calls(
            org_id, limit=limit or 50, cursor=cursor, **filters
        )
    except ValueError:
        raise validation_error("query.cursor", "not a cursor from this API") from None
    data = []
    for record in records:
        live = state.service.live(record.session_id)
        data.append(call_view(live.record if live is not None else record))
    return JSONResponse({"data": data, "nextCursor": next_cursor})


async def _csv_stream(
    state: AppState, org_id: str, filters: dict[str, Any], limit: int | None, cursor: str | None
) -> AsyncIterator[str]:
    """Every matching call (newest first) unless ``limit`` is given: reports want it all."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    remaining = limit
    while True:
        page = 1000 if remaining is None else min(1000, remaining)
        records, cursor = await state.store.list_calls(org_id, limit=page, cursor=cursor, **filters)
        for record in records:
            writer.writerow(_csv_row(record))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if remaining is not None:
            remaining -= len(records)
            if remaining <= 0:
                return
        if cursor is None or not records:
            return


@router.get(
    "/calls/{session_id}/recording",
    responses={200: {"content": {"audio/wav": {}}, "description": "the call's recording"}},
)
async def get_recording(
    org_id: str, session_id: str, state: State, principal: Auth
) -> FileResponse:
    await load_org(state, principal, org_id)
    record = await _current(state, org_id, session_id)
    if record is None or not record.recording_path:
        raise not_found("recording")
    path = Path(record.recording_path)
    if not await asyncio.to_thread(path.is_file):
        raise not_found("recording")
    return FileResponse(path, media_type="audio/wav", filename=f"{session_id}.wav")


@router.get("/calls/{session_id}/webhook-deliveries", response_model=WebhookAttemptList)
async def list_deliveries(
    org_id: str, session_id: str, state: State, principal: Auth
) -> JSONResponse:
    await load_org(state, principal, org_id)
    if await _current(state, org_id, session_id) is None:
        raise not_found("call")
    await state.service.writer.flush()
    attempts = await state.store.list_webhook_attempts(session_id)
    data = [
        {
            "eventId": a.delivery_id,
            "eventType": a.event_type,
            "attempt": a.attempt,
            "at": iso(a.at),
            "url": a.url,
            "statusCode": a.status_code,
            "error": a.error,
            "durationMs": a.duration_ms,
            "willRetry": a.will_retry,
        }
        for a in attempts
    ]
    return JSONResponse({"data": data})


@router.get("/calls/{session_id}/events", response_model=CallEventList)
async def list_events(org_id: str, session_id: str, state: State, principal: Auth) -> JSONResponse:
    """The session's event log: every transition, SIP progress, AMD, flow node, DTMF."""
    await load_org(state, principal, org_id)
    session = state.service.live(session_id)
    if session is not None and session.record.org_id == org_id:
        return JSONResponse({"data": [event_view(e) for e in session.events]})
    if await state.store.get_call(org_id, session_id) is None:
        raise not_found("call")
    await state.service.writer.flush()
    events = await state.store.get_events(session_id)
    return JSONResponse({"data": [event_view(e) for e in events]})
