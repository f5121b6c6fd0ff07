"""dialflow calling dialflow on loopback: the endpoint, transactions, dialogs and media together.

These complement the interop tests (tests/interop/) against SIPp and baresip, which
prove the same behaviour against peers that are not our own code.
"""

from __future__ import annotations

import asyncio
import logging
import random

import numpy as np
import pytest

from dialflow.media.sources import ToneSource
from dialflow.sip.errors import SipParseError
from dialflow.telephony.call import InboundCall
from dialflow.telephony.endpoint import EndpointConfig, SipEndpoint, bad_request_reply
from dialflow.telephony.events import CallAnswered, CallProgress, EndReason, HangupBy


def _config(port_base: int) -> EndpointConfig:
    return EndpointConfig(
        sip_host="127.0.0.1", sip_port=0, rtp_port_range=(port_base, port_base + 400)
    )


async def _pair(handler):  # type: ignore[no-untyped-def]
    callee = SipEndpoint(_config(21000), on_incoming=handler)
    caller = SipEndpoint(_config(22000))
    await callee.start()
    await caller.start()
    return caller, callee


def _dominant_hz(frames: list[np.ndarray]) -> float:
    audio = np.concatenate(frames).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * 8000 / len(audio))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_answered_with_audio_and_dtmf_both_ways(transport: str) -> None:
    callee_frames: list[np.ndarray] = []
    callee_digits: list[str] = []

    async def on_incoming(call: InboundCall) -> None:
        await call.ring()
        await call.answer()
        assert call.leg is not None
        call.leg.on_frame(lambda frame, _t: callee_frames.append(frame.copy()))
        call.leg.on_dtmf(lambda d: callee_digits.append(d.digit))
        call.leg.play(ToneSource(1000.0, 3000))
        await call.leg.send_dtmf("9")
        await call.wait_ended(timeout=10)

    caller, callee = await _pair(on_incoming)
    try:
        events: list[object] = []
        suffix = ";transport=tcp" if transport == "tcp" else ""
        call = await caller.place_call(f"sip:7001@127.0.0.1:{callee.port}{suffix}")
        call.on_event(events.append)
        assert await call.wait_answered(timeout=5)
        assert call.leg is not None
        caller_frames: list[np.ndarray] = []
        caller_digits: list[str] = []
        call.leg.on_frame(lambda frame, _t: caller_frames.append(frame.copy()))
        call.leg.on_dtmf(lambda d: caller_digits.append(d.digit))
        call.leg.play(ToneSource(600.0, 3000))
        await call.leg.send_dtmf("12#")
        await asyncio.sleep(1.2)
        await call.hangup()
        end = await call.wait_ended(timeout=5)
        assert end.reason is EndReason.COMPLETED and end.hangup_by is HangupBy.LOCAL
        assert any(isinstance(e, CallProgress) and e.code == 180 for e in events)
        assert any(isinstance(e, CallAnswered) for e in events)
        assert callee_digits == ["1", "2", "#"]
        assert caller_digits == ["9"]
        assert abs(_dominant_hz(callee_frames[10:]) - 600) < 20
        assert abs(_dominant_hz(caller_frames[10:]) - 1000) < 20
        await asyncio.sleep(0.2)
        assert caller.active_calls == 0 and callee.active_calls == 0
    finally:
        await caller.close()
        await callee.close()


async def test_busy_and_remote_hangup() -> None:
    async def busy(call: InboundCall) -> None:
        await call.reject(486)

    caller, callee = await _pair(busy)
    try:
        call = await caller.place_call(f"sip:1@127.0.0.1:{callee.port}")
        end = await call.wait_ended(timeout=5)
        assert end.reason is EndReason.BUSY and end.code == 486
    finally:
        await caller.close()
        await callee.close()

    async def answer_then_bye(call: InboundCall) -> None:
        await call.answer()
        await asyncio.sleep(0.3)
        await call.hangup()

    caller, callee = await _pair(answer_then_bye)
    try:
        call = await caller.place_call(f"sip:1@127.0.0.1:{callee.port}")
        end = await call.wait_ended(timeout=5)
        assert end.reason is EndReason.COMPLETED and end.hangup_by is HangupBy.REMOTE
    finally:
        await caller.close()
        await callee.close()


async def test_ring_timeout_sends_cancel() -> None:
    seen: list[EndReason] = []

    async def never_answer(call: InboundCall) -> None:
        await call.ring()
        end = await call.wait_ended(timeout=10)
        seen.append(end.reason)

    caller, callee = await _pair(never_answer)
    try:
        call = await caller.place_call(f"sip:1@127.0.0.1:{callee.port}", ring_timeout=0.5)
        end = await call.wait_ended(timeout=5)
        assert end.reason is EndReason.NO_ANSWER
        assert end.code == 487
        await asyncio.sleep(0.1)
        assert seen == [EndReason.CANCELED]
    finally:
        await caller.close()
        await callee.close()


async def test_garbage_flood_leaves_endpoint_serving(caplog: pytest.LogCaptureFixture) -> None:
    """10,000 random and mutated datagrams: the endpoint keeps serving, answers 400 where
    it can, and logs no more than a few rate-limited warnings for the whole flood."""

    async def answer(call: InboundCall) -> None:
        await call.answer()
        await call.wait_ended(timeout=10)

    caller, callee = await _pair(answer)
    rng = random.Random(1234)
    template = (
        "INVITE sip:7001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{n}\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:7001@127.0.0.1>\r\nCall-ID: {n}\r\nCSeq: 1 INVITE\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    replies: list[bytes] = []

    class Collector(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
            replies.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        Collector, remote_addr=("127.0.0.1", callee.port)
    )
    caplog.set_level(logging.WARNING, logger="dialflow")
    try:
        for n in range(10_000):
            kind = n % 4
            if kind == 0:
                data = rng.randbytes(rng.randint(1, 600))
            elif kind == 3:
                # A well-formed head with a broken CSeq: a 400 can be formed.
                data = template.format(n=n).replace("CSeq: 1 INVITE", "CSeq: x").encode()
            else:
                base = bytearray(template.format(n=n).encode())
                for _ in range(rng.randint(1, 8)):
                    base[rng.randrange(len(base))] = rng.randrange(256)
                data = bytes(base[: rng.randint(10, len(base))]) if kind == 2 else bytes(base)
            transport.sendto(data)
            if n % 200 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0.5)
        assert callee.stats["malformed"] > 2500
        assert any(r.startswith(b"SIP/2.0 400 ") for r in replies)
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) <= 3, [r.getMessage() for r in warnings]
        call = await caller.place_call(f"sip:7001@127.0.0.1:{callee.port}")
        assert await call.wait_answered(timeout=5)
        await call.hangup()
    finally:
        transport.close()
        await caller.close()
        await callee.close()


def test_bad_request_reply_copies_the_headers_a_response_needs() -> None:
    raw = (
        b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: abc\r\nCSeq: nope\r\n\r\n"
    )
    reply = bad_request_reply(raw, SipParseError("bad CSeq"))
    assert reply is not None
    assert reply.startswith(b"SIP/2.0 400 bad CSeq\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa")
    assert b"Call-ID: abc\r\n" in reply and b"CSeq: nope\r\n" in reply
    assert bad_request_reply(b"SIP/2.0 200 OK\r\n\r\n", SipParseError("x")) is None
    assert bad_request_reply(raw.replace(b"Call-ID: abc\r\n", b""), SipParseError("x")) is None
