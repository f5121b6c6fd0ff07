"""Tester flows against far ends that are not dialflow: SIPp and baresip as the system
under test, driven through the suite runner and an embedded server (HTTP API only).

* SIPp ``uas_answer.xml`` with ``play=True`` answers and plays a pcap of an IVR prompt
  (rendered by the same TTS an IVR flow uses, flite ``kal16``, then ``make_wav_pcap``);
  the tester ``expect``s the phrase, then hangs up. (The committed ``speech_hello.pcap``,
  flite ``kal`` "Hello? Who is this?", is recognised as "hello what was that".)
  SIPp 3.6 aborts ``uas_answer`` on a BYE in the same millisecond as the ACK, so the
  tester starts by listening, never with an immediate hang-up.
* baresip auto-answers and plays a menu rendered the same way; the tester ``expect``s it,
  presses 1 (baresip must see RFC 4733 "1"), then ``gather``s two digits that baresip
  sends back ("42").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialflow.speech.tts import TtsEngine
from dialflow.testing.embedded import EmbeddedServer
from dialflow.testing.runner import SuiteRunner, TestResult, TestStatus
from dialflow.testing.suite import suite_from_data

from .peers import Baresip, Sipp, make_wav_pcap, require_binary, write_wav

pytestmark = pytest.mark.interop

ORG = "interop"


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    srv = EmbeddedServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def _runner(
    server: EmbeddedServer, tester: dict[str, Any], to: str, **test: Any
) -> tuple[SuiteRunner, Any]:
    key = await server.create_org(ORG)
    suite = suite_from_data(
        {"org": ORG, "tests": [{"name": tester["id"], "flow": tester["id"], "to": to, **test}]},
        [tester],
        name="interop",
    )
    runner = SuiteRunner(suite, server=server.base_url, token=key, sip_address=server.sip_address)
    await runner.prepare()
    await server.wait_warm()
    return runner, suite.tests[0]


def _explain(result: TestResult) -> str:
    return f"{result.summary()}\ncall: {result.call}\nevents: {result.leg and result.leg.events}"


async def _prompt_wav(path: Path, text: str, *, times: int = 1) -> Path:
    """``text`` as an 8 kHz WAV in the voice dialflow's own prompts use, ``times`` over
    with 0.6 s of silence between (as an IVR repeats its menu)."""
    require_binary("flite")
    audio = np.asarray(await TtsEngine().render(text), dtype=np.int16)
    gap = np.zeros(int(0.6 * 8000), dtype=np.int16)
    return write_wav(path, np.concatenate([gap, *([audio, gap] * times)]))


async def test_tester_expects_sipp_prompt(server: EmbeddedServer, tmp_path: Path) -> None:
    # SIPp plays its pcap once: the menu twice gives the recognizer a second hearing.
    wav = await _prompt_wav(
        tmp_path / "prompt.wav", "Press one for sales, or two for support.", times=2
    )
    pcap = make_wav_pcap(tmp_path / "prompt.pcap", wav)
    tester = {
        "id": "hear-sipp",
        "start": "hear",
        "nodes": {
            "hear": {"type": "expect", "heard": "press one for sales", "within": 10, "next": "bye"},
            "bye": {"type": "hangup"},
        },
    }
    with Sipp("uas_answer", play=True, pcap=pcap, timeout=25) as uas:
        runner, test = await _runner(server, tester, uas.uri("ivr"), timeout=20)
        async with runner:
            result = await runner.run_test(test)
        sipp = await asyncio.to_thread(uas.wait)
    assert result.status is TestStatus.PASSED, _explain(result)
    assert result.call["flow"]["outcome"] == "passed"
    assert result.call["hangupBy"] == "flow"
    [assertion] = result.assertions
    assert assertion["passed"] and "press one for" in assertion["heard"].lower(), assertion
    assert sipp.ok, sipp.summary()  # SIPp got our ACK, then our BYE, and answered 200
    assert sipp.rtp_sent > 0, sipp.summary()
    assert result.far_end is None  # not a number of this server


async def test_tester_drives_baresip_with_dtmf_both_ways(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    menu = await _prompt_wav(tmp_path / "menu.wav", "Press one for sales, or two for support.")
    tester = {
        "id": "drive-baresip",
        "start": "hear-menu",
        "nodes": {
            "hear-menu": {
                "type": "expect",
                "heard": "press one for sales",
                "within": 12,
                "next": "press-1",
            },
            "press-1": {"type": "send_dtmf", "digits": "1", "next": "read-code"},
            "read-code": {
                "type": "gather",
                "input": ["dtmf"],
                "numDigits": 2,
                "timeout": 8,
                "saveAs": "code",
                "next": "bye",
            },
            "bye": {"type": "hangup"},
        },
    }
    with Baresip(play_wav=menu, workdir=tmp_path / "baresip") as phone:
        runner, test = await _runner(server, tester, phone.uri, timeout=30)
        async with runner:
            run = asyncio.ensure_future(runner.run_test(test))
            try:
                # baresip reports the tester's RFC 4733 digit, then answers with its own.
                await asyncio.to_thread(phone.wait_for, r"CALL_DTMF_START 1", 20)
                await asyncio.to_thread(phone.send_dtmf, "42")
                result = await asyncio.wait_for(run, 30)
            finally:
                if not run.done():
                    run.cancel()
        received = [e.param for e in phone.events if e.type == "CALL_DTMF_START"]
    assert result.status is TestStatus.PASSED, _explain(result)
    assert result.call["flow"]["path"] == ["hear-menu", "press-1", "read-code", "bye"]
    assert result.call["flow"]["variables"]["code"] == "42"
    assert result.call["flow"]["variables"]["code_kind"] == "dtmf"
    assert received == ["1"]
    [assertion] = result.assertions
    assert assertion["passed"] and "press one for" in assertion["heard"].lower(), assertion
    digits = [e["digit"] for e in result.leg.events if e["type"] == "dtmf"]  # type: ignore[union-attr]
    assert digits == ["4", "2"]
