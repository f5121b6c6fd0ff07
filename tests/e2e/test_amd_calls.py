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
        # 8 s: this greeting is one run of speech that the model finds business-like (a
        # person) until ~4 s; at 5 s it is 0.88 machine offline but, with the live call's
        # frame alignment, sometimes under the timeout's 0.75 (unknown). The length rule
        # (speech over 5 s from its onset) decides it at ~5.8 s.
        {
            "enabled": True,
            "mode": "async",
            "detectBeep": True,
            "timeoutMs": 8000,
            "runFlowOn": ["human", "machine"],
        },
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


async def test_amd_hears_keywords_with_transcripts_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DIALFLOW_AMD_TRANSCRIPTS: the recognizer listens while AMD decides and the words it
    heard before the decision are in the call's log."""
    from dialflow.speech.tts import TtsEngine

    from .conftest import start_server, stop_server

    speech = await TtsEngine(cache_bytes=0).render(
        "Please leave a message for Alex after the tone. I am away until Monday,"
        " and I will call you back."
    )
    rng = np.random.default_rng(11)
    t = np.arange(int(0.5 * 8000)) / 8000
    greeting = np.concatenate(
        [
            np.zeros(2400),
            speech.astype(np.float64),
            np.zeros(4800),
            6000 * np.sin(2 * np.pi * 1000 * t),  # the beep
            np.zeros(16000),
        ]
    ) + rng.normal(0, 20, 2400 + speech.size + 4800 + t.size + 16000)
    wav = write_wav(tmp_path / "greeting.wav", np.clip(greeting, -32768, 32767).astype(np.int16))
    pcap = make_wav_pcap(tmp_path / "greeting.pcap", wav)

    monkeypatch.setenv("DIALFLOW_AMD_TRANSCRIPTS", "1")
    server = await start_server(tmp_path)
    try:
        _, headers = await server.org("acme")
        await server.flow("acme", headers, HOLD)
        call = await _amd_call(
            server,
            headers,
            pcap,
            {"enabled": True, "mode": "sync", "detectBeep": True, "runFlowOn": ["machine"]},
            maxDuration=12,
        )
        assert call["amd"]["result"] == "machine", call["amd"]
        assert call["amd"]["beep"] is True
        r = await server.http.get(
            f"/v1/organizations/acme/calls/{call['sessionId']}/events", headers=headers
        )
        decided = [e for e in r.json()["data"] if e["type"] == "amd"]
        # Words reached the detector before it decided. Which evidence decides may vary with
        # load; measured here, the keywords did at ~3.4 s (the sound alone: 5 s).
        assert len(decided) == 1 and decided[0]["heard"], decided
    finally:
        await stop_server(server)
