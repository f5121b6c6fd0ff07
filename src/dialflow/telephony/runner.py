"""``dialflow dial``: one SIP call from the command line, below the API (for SIP debugging)."""

from __future__ import annotations

import argparse
import contextlib
import json
import time

from ..media.sources import WavFile
from ..sip.auth import DigestCredentials
from .call import Call
from .endpoint import EndpointConfig, SipEndpoint
from .events import CallEnded


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
