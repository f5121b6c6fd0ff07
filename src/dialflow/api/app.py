"""The FastAPI application and the server's wiring (store, SIP endpoint, calls, webhooks)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..calls.amd_words import AmdWordsPool
from ..calls.service import CallService, FlowRunner
from ..config import Settings, default_node_id
from ..store.base import Store
from ..telephony.call import InboundCall
from ..telephony.endpoint import EndpointConfig, SipEndpoint
from .errors import error_response, install_error_handlers
from .metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from ..cluster.node import ClusterNode

log = logging.getLogger("dialflow.api")


@dataclass(slots=True)
class AppState:
    settings: Settings
    store: Store
    endpoint: SipEndpoint
    service: CallService
    metrics: Metrics
    dispatcher: Any = None
    idempotency_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    cluster: ClusterNode | None = None
    """Set when ``DIALFLOW_REDIS_URL`` makes this server one node of several."""


class BodyLimit:
    """413 for bodies over the limit, by Content-Length or while streaming (no buffering)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"the body is larger than {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class LatencyMetrics:
    """Observes every HTTP request's latency by method, route template and status.

    A plain ASGI middleware: ``@app.middleware("http")`` (BaseHTTPMiddleware) runs the
    app in an anyio task group with memory streams, which cost ~16 % of the set-up
    path's CPU at 100 calls/s.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Label children are looked up by a tuple of strings; keep them per label set.
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router puts the matched route in the (shared) scope.
            route = scope.get("route")
            key = (scope["method"], getattr(route, "path", "unmatched"), status)
            child = self._children.get(key)
            if child is None:
                child = self.metrics.api_latency.labels(key[0], key[1], str(status))
                if len(self._children) < 1000:  # the method is the client's free text
                    self._children[key] = child
            child.observe(time.perf_counter() - start)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    flow_runner: FlowRunner | None = None,
) -> FastAPI:
    """The whole server as an ASGI app; its lifespan starts SIP, storage and webhooks."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await _start(settings, metrics, store, flow_runner)
        app.state.dialflow = state
        try:
            yield
        finally:
            await _stop(state)

    app = FastAPI(
        title="dialflow",
        version=__version__,
        description="Self-hosted outbound calling API: SIP/RTP calls, AMD, flows, webhooks.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    from .fastpath import ROUTE_PATH, CreateCallFastPath
    from .routes import calls, flows, orgs, system

    # FastAPI matches routes one by one in this order: the calls routes (every POST and
    # poll of a call) come first. No two routes' templates match the same path, so the
    # order changes nothing else.
    app.include_router(calls.router)
    app.include_router(flows.router)
    app.include_router(orgs.router)
    app.include_router(system.router)

    # Innermost first: the fast path inside the latency metrics, both inside the limit.
    create_route = next(r for r in calls.router.routes if getattr(r, "path", None) == ROUTE_PATH)
    app.add_middleware(CreateCallFastPath, route=create_route)
    app.add_middleware(LatencyMetrics, metrics=metrics)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.get("/metrics", include_in_schema=False)
    async def _metrics(request: Request) -> Response:
        if not settings.metrics_enabled:
            return error_response(404, "not_found", "metrics are disabled")
        state: AppState = request.app.state.dialflow
        metrics.sip_malformed.set(state.endpoint.stats["malformed"])
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


async def _start(
    settings: Settings,
    metrics: Metrics,
    store: Store | None,
    flow_runner: FlowRunner | None,
) -> AppState:
    from ..store.factory import open_store
    from ..webhooks.delivery import WebhookDispatcher

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if store is None:
        store = await open_store(settings.database_url, settings.data_dir)
    else:
        await store.open()
    holder: dict[str, AppState] = {}

    async def on_incoming(call: InboundCall) -> None:
        await _route_inbound(holder["state"], call)

    endpoint = SipEndpoint(
        EndpointConfig(
            sip_host=settings.sip_host,
            sip_port=settings.sip_port,
            rtp_port_range=settings.rtp_ports,
        ),
        on_incoming=on_incoming,
    )

    async def secret_for(org_id: str) -> str | None:
        org = await store.get_org(org_id)
        return org.webhook_secret if org else None

    dispatcher = WebhookDispatcher(
        store,
        secret_for=secret_for,
        allow_private=settings.webhook_allow_private,
        retry_base=settings.webhook_retry_base,
        metrics=metrics.webhook_attempt,
    )
    if flow_runner is None:
        flow_runner = _default_flow_runner(settings)
    service = CallService(
        store,
        endpoint,
        data_dir=settings.data_dir,
        flow_runner=flow_runner,
        enqueue_webhook=dispatcher.enqueue,
        metrics=metrics,
        amd_words=_amd_words(settings, flow_runner),
        node_id=settings.node_id or default_node_id(settings.data_dir),
    )
    state = AppState(settings, store, endpoint, service, metrics, dispatcher)
    holder["state"] = state
    await endpoint.start()
    await service.start()
    if settings.redis_url:
        from ..cluster.node import join

        try:
            state.cluster = await join(settings.redis_url, service.node_id, store, service)
        except BaseException:
            await _stop(state)
            raise
    if service.amd_words is not None:
        await service.amd_words.start()
    await dispatcher.start()
    if settings.flows_dir is not None:
        from .flows_dir import load_flows_dir

        await load_flows_dir(store, Path(settings.flows_dir))
    log.info(
        "dialflow %s: HTTP on %s:%d, SIP on %s:%d, data in %s",
        __version__,
        settings.host,
        settings.port,
        settings.sip_host,
        endpoint.port,
        settings.data_dir,
    )
    return state


def _amd_words(settings: Settings, flow_runner: FlowRunner) -> AmdWordsPool | None:
    """AMD transcripts share the flows' recognizer (one set of worker processes)."""
    speech = getattr(flow_runner, "speech", None)
    if settings.amd_transcripts <= 0 or speech is None:
        return None
    return AmdWordsPool(lambda: speech.recognizer, settings.amd_transcripts)


def _default_flow_runner(settings: Settings) -> FlowRunner:
    from ..flows.executor import FlowExecutor

    return FlowExecutor(
        data_dir=settings.data_dir,
        media_dir=Path(settings.flows_dir) if settings.flows_dir else None,
        http_allow_private=settings.webhook_allow_private,
    )


async def _stop(state: AppState) -> None:
    await state.service.stop()
    if state.cluster is not None:
        await state.cluster.leave()
    close = getattr(state.service.flow_runner, "aclose", None)
    if close is not None:
        await close()
    await state.dispatcher.stop()
    await state.endpoint.close()
    await state.store.close()


async def _route_inbound(state: AppState, call: InboundCall) -> None:
    """An INVITE to sip:<number>@<sip-host>: run the number's flow, or 404 for unknown numbers."""
    number = call.number
    mapping = await state.store.get_number(number) if number else None
    if mapping is None:
        await call.reject(404, "Not Found")
        return
    org = await state.store.get_org(mapping.org_id)
    flow = await state.store.get_flow(mapping.org_id, mapping.flow_id)
    if org is None or flow is None:
        await call.reject(404, "Not Found")
        return
    await state.service.handle_inbound(call, org, flow)
