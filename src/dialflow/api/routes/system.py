"""Health."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .deps import State

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="HTTP, SIP transport and storage are up")
async def healthz(state: State) -> JSONResponse:
    checks = {
        "http": True,
        "sip": state.endpoint.is_serving,
        "storage": await _storage_ok(state),
    }
    if state.cluster is not None:
        checks["redis"] = await state.cluster.healthy()
    ok = all(checks.values())
    body = {"status": "ok" if ok else "degraded", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)


async def _storage_ok(state: State) -> bool:
    try:
        return await state.store.healthy()
    except Exception:
        return False
