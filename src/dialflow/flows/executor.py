"""Runs a flow on a live call, one node at a time (FLOWS.md).

Every node entered and left is an event in the call's log (node id, type, result,
duration). A node runs as a task raced against the call's end, so a far-end hang-up
stops the flow cleanly wherever it is. Expression and node errors end the flow with
outcome ``error`` and a message in the record — never a crash of the service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from ..calls.service import FlowContext, FlowResult
from ..media.sources import WavFile
from .callio import CallIO
from .expressions import ExpressionError
from .model import Flow
from .nodes import NODE_HANDLERS, FlowEnd, NodeError, RunState

if TYPE_CHECKING:
    from .speech_services import SpeechServices

log = logging.getLogger(__name__)


class FlowExecutor:
    """The call service's flow runner (shared by all calls; per-call state lives in a run)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        media_dir: Path | None = None,
        speech: SpeechServices | None = None,
        http_allow_private: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.media_dir = media_dir or data_dir / "media"
        self._speech = speech
        self.http_allow_private = http_allow_private
        self._http: httpx.AsyncClient | None = None
        # Parsed flows by (org, flow, version): a version never changes once stored.
        self._flows: dict[tuple[str, str | None, int | None], Flow] = {}
        # Decoded media files by (path, mtime): a prompt played on every call is read once.
        self._media: dict[tuple[Path, float], np.ndarray] = {}

    @property
    def http(self) -> httpx.AsyncClient:
        """One client for the flows' http nodes, through the SSRF-guarded transport.

        The same rules as webhooks: the URL is checked when rendered, and the transport
        checks the address it actually connects to (DNS rebinding). Built once: its TLS
        context costs tens of milliseconds.
        """
        if self._http is None:
            from ..webhooks.transport import GuardedTransport

            self._http = httpx.AsyncClient(
                transport=GuardedTransport(allow_private=self.http_allow_private),
                follow_redirects=False,
            )
        return self._http

    async def media_file(self, name: str) -> np.ndarray:
        """A WAV under the media directory, decoded to 8 kHz int16 (cached by mtime)."""
        root = self.media_dir.resolve()
        path = (root / name).resolve()
        if root not in path.parents:
            raise FileNotFoundError(name)
        mtime = (await asyncio.to_thread(path.stat)).st_mtime
        audio = self._media.get((path, mtime))
        if audio is None:
            audio = (await asyncio.to_thread(WavFile, path)).samples
            if len(self._media) >= 256:
                self._media.clear()
            self._media[(path, mtime)] = audio
        return audio

    def _flow(self, ctx: FlowContext) -> Flow:
        record = ctx.session.record
        key = (record.org_id, record.flow_id, record.flow_version)
        flow = self._flows.get(key)
        if flow is None:
            flow = Flow.model_validate(ctx.flow)
            if len(self._flows) >= 1024:
                self._flows.clear()
            self._flows[key] = flow
        return flow

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._speech is not None:
            await self._speech.aclose()

    @property
    def speech(self) -> SpeechServices:
        if self._speech is None:
            from .speech_services import SpeechServices

            self._speech = SpeechServices(cache_dir=self.data_dir / "tts-cache")
        return self._speech

    async def run(self, ctx: FlowContext) -> FlowResult:
        flow = self._flow(ctx)
        leg = ctx.call.leg
        if leg is None:
            return FlowResult("error", error="the call has no media")
        media = ctx.call.media
        io = CallIO(leg, inband_dtmf=media is None or media.dtmf_payload_type is None)
        io.on_digit = lambda digit, source: ctx.session.record_event(
            "dtmf", digit=digit, source=source
        )
        state = RunState(self, ctx, flow, io)
        try:
            return await self._run(state)
        finally:
            io.close()

    async def _run(self, state: RunState) -> FlowResult:
        ctx, flow = state.ctx, state.flow
        ended = asyncio.ensure_future(ctx.call.wait_ended())
        node_id: str | None = flow.start
        try:
            while node_id is not None:
                if state.steps >= flow.max_steps:
                    return state.result(
                        "error", f"more than maxSteps ({flow.max_steps}) node visits"
                    )
                state.steps += 1
                node = flow.nodes[node_id]
                state.path.append(node_id)
                ctx.session.record_event("flow.node.entered", node=node_id, nodeType=node.type)
                started = time.monotonic()
                handler = NODE_HANDLERS[node.type]
                task = asyncio.ensure_future(handler(state, node_id, node))
                await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
                duration = int((time.monotonic() - started) * 1000)
                hung_up = not task.done()
                if hung_up and state.pending_expect is not None and state.live_listen:
                    # An expect interrupted by the far end's hang-up is judged on all the
                    # audio it got: end its input and let it finish (it records the
                    # assertion) rather than cancel it and lose what was heard.
                    state.live_listen.finish()
                    await asyncio.wait({task}, timeout=3.0)
                if not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    ctx.session.record_event(
                        "flow.node.left", node=node_id, result="hangup", durationMs=duration
                    )
                    return state.result(state.final_outcome(), None)
                try:
                    next_id, last = task.result()
                except FlowEnd as end:
                    ctx.session.record_event(
                        "flow.node.left", node=node_id, result=end.reason, durationMs=duration
                    )
                    return state.result(state.final_outcome(), None)
                except (ExpressionError, NodeError) as exc:
                    ctx.session.record_event(
                        "flow.node.left",
                        node=node_id,
                        result="error",
                        durationMs=duration,
                        error=str(exc),
                    )
                    return state.result("error", f"node {node_id!r}: {exc}")
                state.last = last
                ctx.session.record_event(
                    "flow.node.left",
                    node=node_id,
                    result=_summary(last),
                    durationMs=duration,
                    next=None if hung_up else next_id,
                )
                if hung_up:
                    return state.result(state.final_outcome(), None)
                node_id = next_id
            return state.result(state.final_outcome(), None)
        except Exception as exc:
            log.exception("flow %s crashed", flow.id)
            return state.result("error", f"{type(exc).__name__}: {exc}")
        finally:
            ended.cancel()


def _summary(last: dict[str, Any]) -> Any:
    """A short, log-friendly view of a node's result."""
    return {k: v for k, v in last.items() if not isinstance(v, (bytes, bytearray))}
