"""``POST …/flows/{flowId}/calls`` without FastAPI's per-request machinery, when it can.

At 300 calls/s FastAPI's layers around the handler (exception and exit-stack
middlewares, route matching over every route, dependency solving, the body's
validation wrapper) cost more CPU than creating the call itself. This middleware
takes the plain, valid case of the one hot route and runs the very same handler code
(:func:`dialflow.api.routes.calls.place_call`) directly.

Anything else is handed to FastAPI untouched, with the body replayed, so every error
keeps its one implementation: a token that does not authenticate, a body that does not
parse or validate, an ``Idempotency-Key`` (its lock and replay logic stay in the route),
a content type other than JSON, and every :class:`~dialflow.api.errors.ApiError` the
handler raises. ``place_call`` raises those before it stores anything, so the route
redoing the request from the start changes nothing but the CPU spent on a refusal.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import authenticate
from .errors import ApiError
from .schemas import CallCreate

ROUTE_PATH = "/v1/organizations/{org_id}/flows/{flow_id}/calls"
# Path parameters as FastAPI matches them (a "str" convertor: one non-empty segment).
_PATH = re.compile(r"^/v1/organizations/([^/]+)/flows/([^/]+)/calls$")


class CreateCallFastPath:
    """ASGI middleware; ``route`` is the FastAPI route it stands in for (for metrics)."""

    def __init__(self, app: ASGIApp, route: Any) -> None:
        self.app = app
        self.route = route
        self.handled = 0  # requests answered here (tests, diagnostics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        if match is None or not _plain_json_without_idempotency_key(scope):
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        replay = _replaying(body, more, receive)
        response = None if more else await self._handle(scope, match, body)
        if response is None:
            await self.app(scope, replay, send)
            return
        self.handled += 1
        scope["route"] = self.route
        await response(scope, replay, send)

    async def _handle(self, scope: Scope, match: re.Match[str], body: bytes) -> Response | None:
        from .routes.calls import place_call  # the routes import the app module

        request = Request(scope)
        try:
            principal = await authenticate(request)
            model = CallCreate.model_validate(json.loads(body))
        except (ApiError, ValueError, ValidationError):
            return None
        state = scope["app"].state.dialflow
        org_id, flow_id = match.group(1), match.group(2)
        try:
            return await place_call(state, principal, org_id, flow_id, model, None)
        except ApiError:
            return None


def _plain_json_without_idempotency_key(scope: Scope) -> bool:
    json_body = False
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return False
        if name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return json_body


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The body; ``more`` is True if something other than body parts came first (a
    disconnect), in which case the route gets everything as it arrived."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replaying(body: bytes, disconnected: bool, receive: Receive) -> Receive:
    """A receive that first gives back the body already read, then the real one."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if disconnected:
        pending.append({"type": "http.disconnect"})

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
