"""``dialflow serve`` and ``dialflow dial``: the endpoint run from the command line.

Until the flow engine lands, inbound calls run a fixed script: ring, answer, play the
greeting (a WAV or a tone), report DTMF, hang up after ``max_call_seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Iterable

from ..media.sources import ToneSource, WavFile
from ..sip.auth import DigestCredentials
from .call import Call, InboundCall
from .endpoint import EndpointConfig, SipEndpoint
from .events import CallEnded

log = logging.getLogger("dialflow")


def _greeting_source(path: str | None) -> WavFile | ToneSource:
    return WavFile(path) if path else ToneSource(440.0, 1000)


async def serve(
    sip_host: str,
    sip_port: int,
    rtp_ports: tuple[int, int],
    *,
    greeting: str | None,
    max_call_seconds: float,
    stop_signals: Iterable[signal.Signals] = (),
) -> int:
    async def on_incoming(call: InboundCall) -> None:
        log.info("incoming call %s from %s to %s", call.call_id, call.from_addr, call.number)
        call.on_event(lambda ev: log.info("call %s: %s", call.call_id, ev))
        await call.ring()
        await call.answer()
        if call.leg is None:
            return
        call.leg.on_dtmf(lambda d: log.info("call %s: DTMF %s", call.call_id, d.digit))
        call.leg.play(_greeting_source(greeting))
        with contextlib.suppress(TimeoutError):
            await call.wait_ended(timeout=max_call_seconds)
        await call.hangup()

    config = EndpointConfig(sip_host=sip_host, sip_port=sip_port, rtp_port_range=rtp_ports)
    endpoint = SipEndpoint(config, on_incoming=on_incoming)
    await endpoint.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_signals:
        loop.add_signal_handler(sig, stop.set)
    print(f"dialflow: SIP on {sip_host}:{endpoint.port} (UDP, TCP). Ctrl-C stops.", flush=True)
    try:
        await stop.wait()
    finally:
        await endpoint.close()
    return 0


def _describe(call: Call, end: CallEnded, stats: dict[str, object]) -> dict[str, object]:
    return {
        "callId": call.call_id,
        "status": end.reason.value,
        "hangupBy": end.hangup_by.value if end.hangup_by else None,
        "finalCode": end.code if end.code is not None else call.final_code,
        "finalReason": end.sip_reason or call.final_reason,
        "error": end.error,
        "durationMs": int(((call.ended_at or time.time()) - call.answered_at) * 1000)
        if call.answered_at
        else 0,
        "media": stats,
    }


async def dial(args: argparse.Namespace) -> int:
    low, _, high = str(args.rtp_ports).partition("-")
    config = EndpointConfig(
        sip_host=args.sip_host, sip_port=args.sip_port, rtp_port_range=(int(low), int(high or low))
    )
    endpoint = SipEndpoint(config)
    await endpoint.start()
    received_dtmf: list[str] = []
    stats: dict[str, object] = {}
    try:
        credentials = (
            DigestCredentials(args.username, args.password or "") if args.username else None
        )
        call = await endpoint.place_call(
            args.to, proxy=args.proxy, credentials=credentials, ring_timeout=args.ring_timeout
        )
        if not args.json:
            call.on_event(lambda ev: print(f"  {type(ev).__name__}: {ev}", flush=True))
        if await call.wait_answered():
            leg = call.leg
            if leg is not None:
                leg.on_dtmf(lambda d: received_dtmf.append(d.digit))
                if args.play:
                    leg.play(WavFile(args.play))
                if args.dtmf:
                    await leg.send_dtmf(args.dtmf)
            with contextlib.suppress(TimeoutError):
                await call.wait_ended(timeout=args.seconds)
            if leg is not None:
                stats = {**leg.stats.as_dict(), "dtmfReceived": "".join(received_dtmf)}
            await call.hangup()
        end = await call.wait_ended(timeout=40)
        outcome = _describe(call, end, stats)
    finally:
        await endpoint.close()
    if args.json:
        print(json.dumps(outcome))
    else:
        print(f"{outcome['status']} ({outcome['finalCode']} {outcome['finalReason'] or ''})")
    return 0 if outcome["status"] == "completed" else 1
