"""AMD on live calls: SIPp answers and streams a person, a machine with a beep, or a fax;
the call's AMD result, beep time, runFlowOn and webhooks are checked through the API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..interop.peers import Sipp, make_wav_pcap, write_wav
from .conftest import Receiver, Server

pytestmark = pytest.mark.interop

FIXTURES = Path(__file__).parent.parent / "unit" / "amd" / "fixtures"
HOLD = {
    "id": "hold",
    "start": "wait",
    "nodes": {"wait": {"type": "pause", "seconds": 30, "next": "end"}, "end": {"type": "hangup"}},
}


def _fax_wav(path: Path) -> Path:
    """CNG: 1100 Hz, 0.5 s on / 3 s off (ITU-T T.30), starting 0.3 s in."""
    rate, seconds = 8000, 7.0
    t = np.arange(int(rate * seconds)) / rate
    on = ((t - 0.3) % 3.5 < 0.5) & (t >= 0.3)
    signal = np.where(on, 6000 * np.sin(2 * np.pi * 1100 * t), 0) + np.random.default_rng(3).normal(
        0, 30, t.size
    )
    return write_wav(path, signal.astype(np.int16))


async def _amd_call(
    server: Server, headers: dict[str, str], pcap: Path, amd: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    with Sipp("uas_answer", play=True, pcap=pcap, timeout=30) as uas:
        r = await server.http.post(
            "/v1/organizations/acme/flows/hold/calls",
            json={"to": uas.uri("amd"), "amd": amd, **extra},
            headers=headers,
        )
        assert r.status_code == 202, r.text
        call = await server.wait_status("acme", r.json()["sessionId"], headers, timeout=30)
        await asyncio.to_thread(uas.wait)
    return call


async def test_amd_human_machine_fax(server: Server, receiver: Receiver, tmp_path: Path) -> None:
    _, headers = await server.org("acme")
    await server.flow("acme", headers, HOLD)
    human = make_wav_pcap(tmp_path / "human.pcap", FIXTURES / "human.wav")
    machine = make_wav_pcap(tmp_path / "machine.pcap", FIXTURES / "machine.wav")
    fax = make_wav_pcap(tmp_path / "fax.pcap", _fax_wav(tmp_path / "fax.wav"))

    call = await _amd_call(
        server,
        headers,
        human,
        {"enabled": True, "mode": "sync", "runFlowOn": ["human"]},
        maxDuration=3,
    )
    assert call["amd"]["result"] == "human", call["amd"]
    assert 300 <= call["amd"]["decisionMs"] <= 3000
    assert call["flow"]["outcome"] == "completed" and call["flow"]["path"] == ["wait"]

    call = await _amd_call(
        server,
        headers,
        machine,
        {"enabled": True, "mode": "async", "detectBeep": True, "runFlowOn": ["human", "machine"]},
        maxDuration=9,
        mode="webhook",
        webhookUrl=receiver.url,
    )
    assert call["amd"]["result"] == "machine", call["amd"]
    assert call["amd"]["beep"] is True
    assert abs(call["amd"]["beepMs"] - 7360) <= 300, call["amd"]
    for _ in range(100):
        if any(q["json"]["type"] == "call.completed" for q in receiver.requests):
            break
        await asyncio.sleep(0.05)
    types = [q["json"]["type"] for q in receiver.requests]
    assert types[0:2] == ["call.ringing", "call.answered"] and types[-1] == "call.completed"
    amd_events = [
        q["json"]["call"]["amd"] for q in receiver.requests if q["json"]["type"] == "call.amd"
    ]
    assert [e["result"] for e in amd_events] == [
        "machine",
        "machine",
    ]  # the decision, then the beep
    assert amd_events[-1]["beep"] is True

    call = await _amd_call(
        server,
        headers,
        fax,
        {"enabled": True, "mode": "sync", "runFlowOn": ["human"]},
    )
    assert call["amd"]["result"] == "fax", call["amd"]
    assert call["flow"]["outcome"] == "skipped" and call["hangupBy"] == "flow"
