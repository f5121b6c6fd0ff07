"""dialflow's SIP/RTP endpoint against SIPp (tests/interop/scenarios/*.xml).

Every test asserts what the peer saw — SIPp's exit status, call statistics, the digest
it verified, the RTP it echoed — as well as what dialflow reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from dialflow.media.sources import ToneSource
from dialflow.sip.auth import DigestCredentials
from dialflow.telephony.call import InboundCall
from dialflow.telephony.endpoint import EndpointConfig, SipEndpoint
from dialflow.telephony.events import CallProgress, EndReason, HangupBy

from .peers import TONE_DTMF_DIGITS, TONE_DTMF_PCAP, Sipp, find_free_udp_port

pytestmark = pytest.mark.interop


def _spectrum_peak(frames: list[np.ndarray]) -> tuple[float, float]:
    """(dominant frequency in Hz, RMS level in dBFS) of the concatenated frames."""
    audio = np.concatenate(frames).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    rms = float(np.sqrt(np.mean(audio**2))) or 1e-9
    return float(np.argmax(spectrum) * 8000 / len(audio)), 20 * np.log10(rms / 32768)


@pytest.fixture
async def endpoint() -> AsyncIterator[SipEndpoint]:
    base = find_free_udp_port(span=60)
    ep = SipEndpoint(
        EndpointConfig(sip_host="127.0.0.1", sip_port=0, rtp_port_range=(base, base + 58))
    )
    await ep.start()
    try:
        yield ep
    finally:
        await ep.close()


async def test_call_to_sipp_uas_audio_flows_both_ways(endpoint: SipEndpoint) -> None:
    """SIPp uas_answer.xml with -rtp_echo: our 1 kHz tone goes out and comes back."""
    with Sipp("uas_answer", rtp_echo=True, timeout=20) as uas:
        call = await endpoint.place_call(uas.uri("echo"))
        events: list[object] = []
        call.on_event(events.append)
        assert await call.wait_answered(timeout=5)
        assert call.leg is not None
        heard: list[np.ndarray] = []
        call.leg.on_frame(lambda frame, _t: heard.append(frame))
        call.leg.play(ToneSource(1000.0, 3000))
        await asyncio.sleep(2.0)
        await call.hangup()
        end = await call.wait_ended(timeout=5)
        result = await asyncio.to_thread(uas.wait)
    assert result.ok, result.summary()
    assert result.retransmissions == 0, result.summary()
    assert result.rtp_echoed >= 60, result.summary()
    assert end.reason is EndReason.COMPLETED and end.hangup_by is HangupBy.LOCAL
    assert any(isinstance(e, CallProgress) and e.code == 180 for e in events)
    freq, level = _spectrum_peak(heard[25:])
    assert freq == pytest.approx(1000, abs=15)
    assert level > -20


async def test_sipp_hangs_up_first(endpoint: SipEndpoint) -> None:
    with Sipp("uas_answer", uas_bye=True, hold_ms=800, timeout=15) as uas:
        call = await endpoint.place_call(uas.uri("bye"))
        end = await call.wait_ended(timeout=10)
        result = await asyncio.to_thread(uas.wait)
    assert result.ok, result.summary()
    assert end.reason is EndReason.COMPLETED and end.hangup_by is HangupBy.REMOTE


async def test_sipp_busy_486(endpoint: SipEndpoint) -> None:
    with Sipp("uas_busy", timeout=15) as uas:
        call = await endpoint.place_call(uas.uri("busy"))
        end = await call.wait_ended(timeout=10)
        result = await asyncio.to_thread(uas.wait)
    assert result.ok, result.summary()  # SIPp got the ACK for its 486
    assert end.reason is EndReason.BUSY and end.code == 486 and end.sip_reason == "Busy Here"


async def test_ring_timeout_cancels_sipp(endpoint: SipEndpoint) -> None:
    """uas_ring_cancel.xml rings until CANCEL, answers it 200 and the INVITE 487."""
    with Sipp("uas_ring_cancel", timeout=15) as uas:
        call = await endpoint.place_call(uas.uri("ring"), ring_timeout=1.0)
        end = await call.wait_ended(timeout=10)
        result = await asyncio.to_thread(uas.wait)
    assert result.ok, result.summary()  # SIPp's scenario only succeeds if our CANCEL came
    assert end.reason is EndReason.NO_ANSWER and end.code == 487


@pytest.mark.parametrize("proxy_auth", [False, True], ids=["401-www", "407-proxy"])
async def test_digest_challenge_through_outbound_proxy(
    endpoint: SipEndpoint, proxy_auth: bool
) -> None:
    """SIPp as an outbound proxy that challenges (401 or 407) and checks our digest."""
    with Sipp("uas_auth", proxy_auth=proxy_auth, timeout=15) as proxy:
        call = await endpoint.place_call(
            "sip:+14155550100@pstn.invalid",
            proxy=f"sip:{proxy.address}",
            credentials=DigestCredentials("alice", "secret"),
        )
        assert await call.wait_answered(timeout=5)
        await asyncio.sleep(0.3)
        await call.hangup()
        result = await asyncio.to_thread(proxy.wait)
    assert result.ok, result.summary()
    invites = [m for m in result.messages.split("\n\n") if m.startswith("INVITE ")]
    assert invites, result.summary()


async def test_wrong_password_fails_cleanly(endpoint: SipEndpoint) -> None:
    with Sipp("uas_auth", timeout=15) as proxy:
        call = await endpoint.place_call(
            "sip:bob@pstn.invalid",
            proxy=f"sip:{proxy.address}",
            credentials=DigestCredentials("alice", "wrong"),
        )
        end = await call.wait_ended(timeout=10)
        result = await asyncio.to_thread(proxy.wait)
    assert not result.ok
    assert end.reason is EndReason.FAILED and end.code == 403


async def test_sipp_calls_dialflow_with_audio_and_dtmf() -> None:
    """SIPp uac_call.xml calls our inbound side, plays 1 kHz and RFC 4733 "123#", hangs up."""
    digits: list[str] = []
    heard: list[np.ndarray] = []
    ended: list[EndReason] = []

    async def on_incoming(call: InboundCall) -> None:
        await call.ring()
        await call.answer()
        assert call.leg is not None
        call.leg.on_dtmf(lambda d: digits.append(d.digit))
        call.leg.on_frame(lambda frame, _t: heard.append(frame))
        call.leg.play(ToneSource(500.0, 5000))
        end = await call.wait_ended(timeout=15)
        ended.append(end.reason)

    base = find_free_udp_port(span=60)
    ep = SipEndpoint(
        EndpointConfig(sip_host="127.0.0.1", sip_port=0, rtp_port_range=(base, base + 58)),
        on_incoming=on_incoming,
    )
    await ep.start()
    try:
        with Sipp(
            "uac_call",
            remote=f"127.0.0.1:{ep.port}",
            service="7001",
            play=True,
            pcap=TONE_DTMF_PCAP,
            hold_ms=3000,
            timeout=20,
        ) as uac:
            result = await asyncio.to_thread(uac.wait)
        await asyncio.sleep(0.2)
    finally:
        await ep.close()
    assert result.ok, result.summary()
    assert result.retransmissions == 0, result.summary()
    assert "".join(digits) == TONE_DTMF_DIGITS
    assert ended == [EndReason.COMPLETED]
    speech = [f for f in heard if np.abs(f).max() > 1000]
    freq, level = _spectrum_peak(speech[:40])
    assert freq == pytest.approx(1000, abs=15)
    assert level > -25
