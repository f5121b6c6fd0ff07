"""What each node type does on a call (FLOWS.md's table), one coroutine per type.

A handler gets the run's state, the node id and the node, and returns the next node
id (None ends the flow) and its result (``last`` for the next node's expressions).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from ..calls.recorder import write_wav
from ..dsp.tones import BeepDetector
from ..media.sources import RawPcm, WavFile
from ..speech.asr import AsrError, Transcript
from . import model as m
from .callio import CallIO, frame_rms
from .expressions import evaluate_condition, render, render_value

if TYPE_CHECKING:
    from ..calls.service import FlowContext, FlowResult
    from .executor import FlowExecutor
    from .speech_services import ListenSession

MAX_HTTP_BODY = 256 * 1024  # bytes of a response body kept in a variable
MAX_MEDIA_BYTES = 20 * 1024 * 1024
SPEECH_END_SILENCE = 0.8  # seconds of silence after speech that end an utterance


class NodeError(Exception):
    """A node could not do its job: the flow ends with outcome "error"."""


class FlowEnd(Exception):
    """The flow ended inside a node (hangup, transfer)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RunState:
    executor: FlowExecutor
    ctx: FlowContext
    flow: m.Flow
    io: CallIO
    steps: int = 0
    path: list[str] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    # While an expect node listens: so a far-end hang-up can still record its assertion.
    pending_expect: tuple[str, m.ExpectNode] | None = None
    live_listen: ListenSession | None = None

    @property
    def vars(self) -> dict[str, Any]:
        return self.ctx.variables

    def scope(self) -> dict[str, Any]:
        record = self.ctx.session.record
        amd = self.ctx.amd or {"result": None, "beep": None, "decisionMs": None}
        return {
            "vars": self.ctx.variables,
            "call": {
                "to": record.to,
                "from": record.from_,
                "sessionId": record.session_id,
                "direction": record.direction,
            },
            "amd": amd,
            "last": self.last,
        }

    def render(self, text: str) -> str:
        return render(text, self.scope())

    def final_outcome(self) -> str:
        if self.assertions:
            return "passed" if all(a["passed"] for a in self.assertions) else "failed"
        return "completed"

    def result(self, outcome: str, error: str | None) -> FlowResult:
        from ..calls.service import FlowResult

        return FlowResult(
            outcome=outcome,
            path=list(self.path),
            variables=dict(self.ctx.variables),
            assertions=list(self.assertions),
            error=error,
        )


Handler = Callable[[RunState, str, Any], Awaitable[tuple[str | None, dict[str, Any]]]]


# -- prompts


async def say(state: RunState, node_id: str, node: m.SayNode) -> tuple[str | None, dict[str, Any]]:
    text = state.render(node.text)
    audio = await state.executor.speech.synthesize(text, node.voice)
    how = await state.io.play(RawPcm(audio), barge_in=node.barge_in)
    state.ctx.session.record_event("say", node=node_id, text=text, bargedIn=how == "barged")
    return node.next, {"text": text, "bargedIn": how == "barged"}


async def play(
    state: RunState, node_id: str, node: m.PlayNode
) -> tuple[str | None, dict[str, Any]]:
    what = node.file or state.render(node.url or "")
    try:
        if node.file:
            audio = await state.executor.media_file(node.file)
        else:
            audio = (await asyncio.to_thread(WavFile, BytesIO(await _fetch(state, what)))).samples
    except OSError:
        raise NodeError(f"no media file {what!r} under the media directory") from None
    except NodeError:
        raise
    except Exception as exc:
        raise NodeError(f"{what}: not a playable WAV file ({exc})") from None
    how = "finished"
    for _ in range(node.loop):
        how = await state.io.play(RawPcm(audio), barge_in=node.barge_in)
        if how == "barged":
            break
    return node.next, {"played": what, "bargedIn": how == "barged"}


# -- input


async def gather(
    state: RunState, node_id: str, node: m.GatherNode
) -> tuple[str | None, dict[str, Any]]:
    io = state.io
    want_dtmf = "dtmf" in node.input
    want_speech = "speech" in node.input
    digits = ""
    kind = "timeout"
    text = ""
    session = None
    stop_listening: Callable[[], None] | None = None
    if want_speech:
        session = state.executor.speech.recognizer_session(list(node.speech_hints or []))
        stop_listening = io.listen(lambda frame, _t: session.feed(frame))
    try:
        deadline = time.monotonic() + node.timeout
        while True:
            if session is not None and session.speech_started and not digits:
                # Speech began: wait for its end (or the digits that interrupt it).
                result = await session.wait_result(timeout=max(node.timeout, 10.0))
                text, kind = result.text, "speech"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kind = "dtmf" if digits else "timeout"
                break
            # Speech start is only seen by looking, so a speech gather looks every 100 ms;
            # a DTMF-only gather simply waits for the next digit or its timeout.
            wait = min(remaining, 0.1) if want_speech else remaining
            digit = await io.next_digit(wait) if want_dtmf else None
            if digit is None:
                if not want_dtmf:
                    await asyncio.sleep(wait)
                continue
            if node.finish_on_key and digit == node.finish_on_key:
                kind = "dtmf"
                break
            digits += digit
            deadline = time.monotonic() + node.timeout  # timeout counts from the last input
            if node.num_digits and len(digits) >= node.num_digits:
                kind = "dtmf"
                break
    finally:
        if stop_listening is not None:
            stop_listening()
        if session is not None:
            session.close()
    value = digits if kind == "dtmf" else text if kind == "speech" else ""
    state.vars[node.save_as] = value
    state.vars[f"{node.save_as}_kind"] = kind
    state.ctx.session.record_event("gather", node=node_id, kind=kind, value=value)
    return node.next, {"value": value, "kind": kind}


# -- logic


async def branch(
    state: RunState, node_id: str, node: m.BranchNode
) -> tuple[str | None, dict[str, Any]]:
    scope = state.scope()
    for index, case in enumerate(node.cases):
        if evaluate_condition(case.when, scope):
            return case.next, {"case": index}
    return node.default, {"case": "default"}


async def set_(state: RunState, node_id: str, node: m.SetNode) -> tuple[str | None, dict[str, Any]]:
    values = {}
    for name, template in node.values.items():
        value = render_value(template, state.scope())
        state.vars[name] = value
        values[name] = value
    return node.next, {"set": values}


async def http(
    state: RunState, node_id: str, node: m.HttpNode
) -> tuple[str | None, dict[str, Any]]:
    url = state.render(node.url)
    scope = state.scope()
    headers = {k: render(v, scope) for k, v in (node.headers or {}).items()}
    body = render_value(node.json_body, scope) if node.json_body is not None else None
    try:
        response = await _request(state, node.method, url, headers, body, node.timeout)
    except NodeError as exc:
        return _http_error(state, node, str(exc))
    text = response.content[:MAX_HTTP_BODY].decode("utf-8", "replace")
    try:
        data: Any = response.json() if len(response.content) <= MAX_HTTP_BODY else text
    except ValueError:
        data = text
    if response.status_code >= 400:
        return _http_error(
            state, node, f"HTTP {response.status_code}", status=response.status_code, data=data
        )
    state.vars[node.save_as] = data
    return node.next, {"status": response.status_code}


def _http_error(
    state: RunState, node: m.HttpNode, message: str, *, status: int | None = None, data: Any = None
) -> tuple[str | None, dict[str, Any]]:
    state.vars[node.save_as] = {"error": message, "status": status, "body": data}
    if node.on_error is None:
        raise NodeError(f"{node.method} failed: {message}")
    return node.on_error, {"error": message, "status": status}


async def _request(
    state: RunState, method: str, url: str, headers: dict[str, str], body: Any, timeout: float
) -> httpx.Response:
    from ..webhooks.urls import WebhookUrlNotAllowed, check_webhook_url_async

    try:
        await check_webhook_url_async(url, allow_private=state.executor.http_allow_private)
        return await state.executor.http.request(
            method, url, headers=headers, json=body, timeout=timeout
        )
    except WebhookUrlNotAllowed as exc:
        raise NodeError(f"{url}: {exc}") from None
    except httpx.HTTPError as exc:
        raise NodeError(f"{type(exc).__name__}: {exc}") from None


async def _fetch(state: RunState, url: str) -> bytes:
    response = await _request(state, "GET", url, {}, None, 10.0)
    if response.status_code != 200:
        raise NodeError(f"{url}: HTTP {response.status_code}")
    if len(response.content) > MAX_MEDIA_BYTES:
        raise NodeError(f"{url}: larger than {MAX_MEDIA_BYTES} bytes")
    return response.content


# -- recording and listening


async def record(
    state: RunState, node_id: str, node: m.RecordNode
) -> tuple[str | None, dict[str, Any]]:
    frames: list[np.ndarray] = []
    heard_speech = False
    silent_since = time.monotonic()
    done = asyncio.Event()
    threshold = 32768 * 10 ** (-40 / 20)  # -40 dBFS: quieter than this is silence

    def on_frame(frame: np.ndarray, _t: float) -> None:
        nonlocal heard_speech, silent_since
        frames.append(frame)
        loud = frame_rms(frame) > threshold
        now = time.monotonic()
        if loud:
            heard_speech = True
            silent_since = now
        elif node.silence_timeout and heard_speech and now - silent_since >= node.silence_timeout:
            done.set()

    state.io.clear_digits()
    stop = state.io.listen(on_frame)
    ended_by = "max"
    try:
        deadline = time.monotonic() + node.max_seconds
        while not done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            digit = await state.io.next_digit(min(remaining, 0.1))
            if digit is not None and node.finish_on_key and digit == node.finish_on_key:
                ended_by = "key"
                break
        else:
            ended_by = "silence"
    finally:
        stop()
    session_id = state.ctx.session.id
    path = state.executor.data_dir / "recordings" / f"{session_id}-{node_id}.wav"
    audio = np.concatenate(frames) if frames else np.zeros(0, np.int16)
    await asyncio.to_thread(write_wav, path, audio)
    record_ = state.ctx.session.record
    if record_.recording_path is None:
        record_.recording_path = str(path)
    info = {"file": path.name, "durationMs": len(audio) // 8, "endedBy": ended_by}
    state.vars[node.save_as] = info
    state.ctx.session.record_event("record", node=node_id, **info)
    return node.next, info


async def listen(
    state: RunState, node_id: str, node: m.ListenNode
) -> tuple[str | None, dict[str, Any]]:
    heard = await _transcribe(state, [], node.max_seconds, node.silence_timeout)
    state.vars[node.save_as] = heard.text
    state.ctx.session.record_event("listen", node=node_id, heard=heard.text)
    return node.next, {"heard": heard.text}


async def _transcribe(
    state: RunState,
    hints: list[str],
    max_seconds: float,
    silence_timeout: float,
    *,
    until: Callable[[Transcript], bool] | None = None,
) -> Transcript:
    """Recognize the far end until silence after speech, ``max_seconds``, or ``until``."""
    session = state.executor.speech.recognizer_session(hints, end_silence=silence_timeout)
    stop = state.io.listen(lambda frame, _t: session.feed(frame))
    state.live_listen = session
    try:
        try:
            # Woken by each new hypothesis (no polling); the final one ends the loop.
            async with asyncio.timeout(max_seconds):
                async for partial in session.partials():
                    if partial.is_final or (until is not None and until(partial)):
                        return partial
        except (TimeoutError, AsrError):
            pass
        return await session.wait_result(timeout=5.0, finish=True)
    finally:
        state.live_listen = None
        stop()
        session.close()


def expect_matches(node: m.ExpectNode, expected: str | None, heard: Transcript) -> bool:
    """The phrase the recognizer matched to the hint, or anywhere in what it heard."""
    candidates = [text for text in (heard.phrase, heard.text) if text]
    return any(node.matches(text, heard=expected) for text in candidates)


def record_assertion(
    state: RunState, node_id: str, node: m.ExpectNode, heard: Transcript
) -> dict[str, Any]:
    """Record an expect node's assertion: what was expected, the transcript, the verdict."""
    expected = state.render(node.heard) if node.heard else None
    assertion = {
        "node": node_id,
        "expected": expected or node.pattern or "",
        "heard": heard.text,
        "passed": expect_matches(node, expected, heard),
    }
    state.assertions.append(assertion)
    if node.save_as:
        state.vars[node.save_as] = heard.text
    state.ctx.session.record_event("assertion", **assertion)
    return assertion


async def expect(
    state: RunState, node_id: str, node: m.ExpectNode
) -> tuple[str | None, dict[str, Any]]:
    expected = state.render(node.heard) if node.heard else None
    hints = [expected] if expected else []
    state.pending_expect = (node_id, node)
    try:
        # API.md: passes as soon as what was recognised so far matches; the assertion
        # records the transcript heard either way.
        heard = await _transcribe(
            state,
            hints,
            node.within,
            node.within,
            until=lambda partial: expect_matches(node, expected, partial),
        )
    finally:
        state.pending_expect = None
    assertion = record_assertion(state, node_id, node, heard)
    if not assertion["passed"] and node.on_fail:
        return node.on_fail, assertion
    return node.next, assertion


async def wait_for_beep(
    state: RunState, node_id: str, node: m.WaitForBeepNode
) -> tuple[str | None, dict[str, Any]]:
    detector = BeepDetector()
    found = asyncio.Event()
    beep_ms: list[int] = []
    clock = {"ms": 0}

    def on_frame(frame: np.ndarray, _t: float) -> None:
        clock["ms"] += 20
        beeps = detector.feed(frame, clock["ms"])
        if beeps and not found.is_set():
            beep_ms.append(int(beeps[0].start_ms))
            found.set()

    stop = state.io.listen(on_frame)
    try:
        await asyncio.wait_for(found.wait(), timeout=node.timeout)
    except TimeoutError:
        pass
    finally:
        stop()
    result = {"beep": bool(beep_ms), "beepMs": beep_ms[0] if beep_ms else None}
    state.ctx.session.record_event("beep", node=node_id, **result)
    return node.next, result


# -- call control


async def send_dtmf(
    state: RunState, node_id: str, node: m.SendDtmfNode
) -> tuple[str | None, dict[str, Any]]:
    leg = state.ctx.call.leg
    if leg is None:
        raise NodeError("no media")
    await leg.send_dtmf(node.digits)
    state.ctx.session.record_event("dtmf.sent", node=node_id, digits=node.digits)
    return node.next, {"sent": node.digits}


async def pause(
    state: RunState, node_id: str, node: m.PauseNode
) -> tuple[str | None, dict[str, Any]]:
    await asyncio.sleep(node.seconds)
    return node.next, {}


async def transfer(
    state: RunState, node_id: str, node: m.TransferNode
) -> tuple[str | None, dict[str, Any]]:
    target = state.render(node.to)
    if re.match(r"^\+[1-9][0-9]{1,14}$", target):
        target = f"tel:{target}"
    ok, detail = await state.ctx.call.refer(target)
    state.ctx.session.record_event("transfer", node=node_id, to=target, ok=ok, detail=detail)
    if not ok:
        raise NodeError(f"transfer to {target} failed: {detail}")
    state.ctx.session.local_hangup_by = state.ctx.session.local_hangup_by or "flow"
    await state.ctx.call.hangup()
    raise FlowEnd("transferred")


async def hangup(
    state: RunState, node_id: str, node: m.HangupNode
) -> tuple[str | None, dict[str, Any]]:
    state.ctx.session.local_hangup_by = state.ctx.session.local_hangup_by or "flow"
    state.ctx.session.record_event("hangup", node=node_id, reason=node.reason)
    await state.ctx.call.hangup()
    raise FlowEnd("hangup")


NODE_HANDLERS: dict[str, Handler] = {
    "say": say,
    "play": play,
    "gather": gather,
    "branch": branch,
    "set": set_,
    "http": http,
    "record": record,
    "send_dtmf": send_dtmf,
    "listen": listen,
    "expect": expect,
    "wait_for_beep": wait_for_beep,
    "pause": pause,
    "transfer": transfer,
    "hangup": hangup,
}
