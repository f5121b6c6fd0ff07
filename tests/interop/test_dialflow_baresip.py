"""dialflow against baresip (a real softphone): calls both ways, audio and RFC 4733 DTMF."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from dialflow.media.sources import ToneSource
from dialflow.telephony.call import InboundCall
from dialflow.telephony.endpoint import EndpointConfig, SipEndpoint
from dialflow.telephony.events import EndReason, HangupBy

from .peers import Baresip, dominant_frequency, find_free_udp_port, tone, wav_energy_dbfs, write_wav

pytestmark = pytest.mark.interop


def _peak_hz(frames: list[np.ndarray]) -> float:
    audio = np.concatenate(frames).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * 8000 / len(audio))


def _config() -> EndpointConfig:
    base = find_free_udp_port(span=60)
    return EndpointConfig(sip_host="127.0.0.1", sip_port=0, rtp_port_range=(base, base + 58))


@pytest.fixture
async def endpoint() -> AsyncIterator[SipEndpoint]:
    ep = SipEndpoint(_config())
    await ep.start()
    try:
        yield ep
    finally:
        await ep.close()


async def test_baresip_answers_dialflow_call_audio_and_dtmf_both_ways(
    endpoint: SipEndpoint, tmp_path: Path
) -> None:
    """baresip auto-answers and plays 700 Hz; we play 1 kHz and send "47"; it sends "8#"."""
    wav = write_wav(tmp_path / "tone700.wav", tone(700.0, 1.0))
    with Baresip(play_wav=wav, workdir=tmp_path / "baresip") as phone:
        call = await endpoint.place_call(phone.uri)
        assert await call.wait_answered(timeout=5)
        assert call.leg is not None
        heard: list[np.ndarray] = []
        digits: list[str] = []
        call.leg.on_frame(lambda frame, _t: heard.append(frame))
        call.leg.on_dtmf(lambda d: digits.append(d.digit))
        call.leg.play(ToneSource(1000.0, 4000))
        await asyncio.to_thread(phone.wait_for, "CALL_ESTABLISHED", 5)
        await asyncio.sleep(0.5)
        assert await call.leg.send_dtmf("47")
        await asyncio.to_thread(phone.wait_for, r"CALL_DTMF_START 7", 5)
        await asyncio.to_thread(phone.send_dtmf, "8#")
        for _ in range(50):
            if len(digits) >= 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        await call.hangup()
        end = await call.wait_ended(timeout=5)
        await asyncio.to_thread(phone.wait_for, "CALL_CLOSED", 5)
        recorded = await asyncio.to_thread(phone.recording, "dec")
        phone_digits = [e.param for e in phone.events if e.type == "CALL_DTMF_START"]
        # Inside the with block: baresip's recording lives in its work dir.
        rec_level = wav_energy_dbfs(recorded, start=0.3)
        rec_freq = dominant_frequency(recorded, start=0.3)
    assert end.reason is EndReason.COMPLETED and end.hangup_by is HangupBy.LOCAL
    assert "".join(phone_digits) == "47"
    assert digits == ["8", "#"]
    assert rec_freq == pytest.approx(1000, abs=10)
    assert rec_level > -25
    assert _peak_hz(heard[25:]) == pytest.approx(700, abs=15)


async def test_baresip_calls_dialflow_and_hangs_up(tmp_path: Path) -> None:
    """baresip dials our inbound side; we answer with 600 Hz; baresip hangs up (BYE to us)."""
    ended: list[tuple[EndReason, HangupBy | None]] = []
    heard: list[np.ndarray] = []

    async def on_incoming(call: InboundCall) -> None:
        await call.ring()
        await call.answer()
        assert call.leg is not None
        call.leg.on_frame(lambda frame, _t: heard.append(frame))
        call.leg.play(ToneSource(600.0, 10_000))
        end = await call.wait_ended(timeout=20)
        ended.append((end.reason, end.hangup_by))

    ep = SipEndpoint(_config(), on_incoming=on_incoming)
    await ep.start()
    try:
        with Baresip(user="caller", workdir=tmp_path / "baresip") as phone:
            phone.dial(f"sip:7001@127.0.0.1:{ep.port}")
            await asyncio.to_thread(phone.wait_for, "CALL_ESTABLISHED", 5)
            await asyncio.sleep(1.5)
            phone.hangup()
            await asyncio.to_thread(phone.wait_for, "CALL_CLOSED", 5)
            recorded = await asyncio.to_thread(phone.recording, "dec")
            rec_freq = dominant_frequency(recorded, start=0.3)
        for _ in range(20):
            if ended:
                break
            await asyncio.sleep(0.1)
    finally:
        await ep.close()
    assert ended == [(EndReason.COMPLETED, HangupBy.REMOTE)]
    assert rec_freq == pytest.approx(600, abs=10)
    assert _peak_hz(heard[25:]) == pytest.approx(440, abs=15)  # baresip's default tone
