"""Prove the interop harness against the peers themselves (no dialflow here).

Each test names its peers and scenarios. If one of these fails, the harness or
the installed SIPp/baresip is broken -- fix that before reading a dialflow
interop failure. Locally they skip without sipp/baresip; under ``CI=true`` they
fail instead.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from .peers import (
    SCENARIO_DIR,
    SPEECH_PCAP,
    TONE_DTMF_DIGITS,
    TONE_DTMF_PCAP,
    Baresip,
    Sipp,
    SippResult,
    digest_problems,
    dominant_frequency,
    read_pcap_rtp,
    received_messages,
    tone,
    ulaw_decode,
    ulaw_encode,
    wav_energy_dbfs,
    write_wav,
)

pytestmark = pytest.mark.interop

DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


# --------------------------------------------------------------------------- media fixtures


def _rtp(packet: bytes) -> tuple[int, bool, int, int, bytes]:
    _, mpt, seq, ts, _ = struct.unpack("!BBHII", packet[:12])
    return mpt & 0x7F, bool(mpt & 0x80), seq, ts, packet[12:]


def test_ulaw_roundtrip_is_g711() -> None:
    # G.711 µ-law: 0 -> 0xFF, full-scale positive -> 0x80, negative -> 0x00.
    assert ulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)).tolist() == [0xFF, 0x80, 0x00]
    x = tone(1000.0, 0.1)
    err = np.abs(ulaw_decode(ulaw_encode(x)).astype(int) - x.astype(int))
    assert err.max() <= np.abs(x.astype(int)).max() // 16  # segment quantisation, < 1/16


def test_tone_dtmf_pcap_is_one_rtp_stream_with_rfc4733_digits() -> None:
    """tests/interop/media/tone_1000hz_dtmf.pcap: PT 0 audio + PT 101 events "123#"."""
    packets = [_rtp(p) for p in read_pcap_rtp(TONE_DTMF_PCAP)]
    seqs = [seq for _, _, seq, _, _ in packets]
    assert seqs == list(range(len(packets)))  # continuous sequence numbers, one stream
    digits, audio = [], bytearray()
    for pt, marker, _, ts, payload in packets:
        if pt == 101:
            event, flags, duration = struct.unpack("!BBH", payload)
            if marker:  # RFC 4733 §2.5.1.3: marker on an event's first packet
                digits.append(event)
                start_ts = ts
            assert ts == start_ts and duration % 160 == 0
        else:
            assert pt == 0 and len(payload) == 160
            audio += payload
    assert digits == [DTMF_CODES[d] for d in TONE_DTMF_DIGITS]
    pcm = ulaw_decode(np.frombuffer(bytes(audio), dtype=np.uint8))
    spectrum = np.abs(np.fft.rfft(pcm.astype(float)))
    assert np.argmax(spectrum) * 8000 / len(pcm) == pytest.approx(1000, abs=5)


def test_digest_check_known_answer_rfc2617() -> None:
    # RFC 2617 §3.5: the worked example (qop=auth) must verify, and only with its password.
    msg = (
        "GET /dir/index.html HTTP/1.1\r\n"
        'Authorization: Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
        'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"\r\n'
    )
    assert digest_problems(msg, "Mufasa", "Circle Of Life") == []
    problems = digest_problems(msg, "Mufasa", "circle of life")
    assert len(problems) == 1 and problems[0].startswith("response")
    assert digest_problems(msg, "Simba", "Circle Of Life")[0].startswith("username")


@pytest.mark.parametrize("scenario", sorted(SCENARIO_DIR.glob("*.xml")), ids=lambda p: p.name)
def test_scenario_is_well_formed_xml(scenario: Path) -> None:
    # SIPp's own parser tolerates e.g. "--" inside comments; other tools do not.
    root = ElementTree.parse(scenario).getroot()
    assert root.tag == "scenario"
    assert root.find("recv") is not None or root.find("send") is not None


# --------------------------------------------------------------------------- SIPp <-> SIPp


def test_sipp_builtin_uac_calls_uas_answer() -> None:
    """SIPp built-in uac -> uas_answer.xml (callee waits for the caller's BYE)."""
    with Sipp("uas_answer", timeout=10) as uas, Sipp("uac", remote=uas.address, hold_ms=300) as uac:
        client = uac.wait()
        server = uas.wait()
    assert client.ok, client.summary()
    assert server.ok, server.summary()
    assert server.retransmissions == 0 and "SIP/2.0 180 Ringing" in client.messages


def test_uac_call_to_uas_answer_audio_flows_both_ways() -> None:
    """uac_call.xml (plays tone + RFC 4733) -> uas_answer.xml (plays tone, echoes RTP)."""
    with (
        Sipp("uas_answer", play=True, rtp_echo=True, timeout=15) as uas,
        Sipp("uac_call", remote=uas.address, play=True, pcap=TONE_DTMF_PCAP, hold_ms=2000) as uac,
    ):
        client = uac.wait()
        server = uas.wait()
    assert client.ok, client.summary()
    assert server.ok, server.summary()
    # 2 s of 50 packets/s each way; the screen sampling may miss the last ~0.3 s.
    assert client.rtp_sent >= 60, client.summary()
    assert server.rtp_echoed >= 60, server.summary()  # the callee received the caller's RTP
    assert server.rtp_sent >= 60, server.summary()
    assert "m=audio" in client.messages and "telephone-event/8000" in server.messages


def test_uas_answer_hangs_up_itself() -> None:
    """uas_answer.xml with -set uas_bye 1 -> BYE after -d ms; uac_call waits for it."""
    with (
        Sipp("uas_answer", uas_bye=True, hold_ms=500, timeout=10) as uas,
        Sipp("uac_call", remote=uas.address, remote_bye=True) as uac,
    ):
        client = uac.wait()
        server = uas.wait()
    assert client.ok, client.summary()
    assert server.ok, server.summary()
    assert any(m.startswith("BYE sip:sipp@") for m in _received(client))


def test_uas_busy_rejects_with_486() -> None:
    """SIPp built-in uac -> uas_busy.xml: the callee's scenario passes (486 ACKed), the
    caller's fails (built-in uac expects 200) -- proving failures are reported."""
    with Sipp("uas_busy", timeout=10) as uas, Sipp("uac", remote=uas.address) as uac:
        client = uac.wait()
        server = uas.wait()
    assert server.ok, server.summary()
    assert not client.ok and client.exit_code == 1
    assert client.failure_reasons == {"FailedUnexpectedMessage": 1}
    assert any(m.startswith("SIP/2.0 486 Busy Here") for m in _received(client))


def test_uas_ring_cancel() -> None:
    """uac_cancel.xml -> uas_ring_cancel.xml: 180, CANCEL, 200 + 487, ACK."""
    with (
        Sipp("uas_ring_cancel", timeout=10) as uas,
        Sipp("uac_cancel", remote=uas.address, hold_ms=300) as uac,
    ):
        client = uac.wait()
        server = uas.wait()
    assert client.ok, client.summary()
    assert server.ok, server.summary()
    codes = [m.split(" ", 2)[1] for m in _received(client) if m.startswith("SIP/2.0")]
    assert codes[-2:] == ["200", "487"] and "180" in codes


@pytest.mark.parametrize("proxy", [False, True], ids=["401", "407"])
@pytest.mark.parametrize("password", ["secret", "wrong"])
def test_uas_auth(proxy: bool, password: str) -> None:
    """uac_auth.xml -> uas_auth.xml: right credentials pass, wrong ones fail the callee."""
    with (
        Sipp("uas_auth", proxy_auth=proxy, auth_password="secret", timeout=10) as uas,
        Sipp("uac_auth", remote=uas.address, auth_password=password, hold_ms=200) as uac,
    ):
        client = uac.wait()
        server = uas.wait()
    header = "Proxy-Authorization: Digest" if proxy else "\nAuthorization: Digest"
    assert header in server.messages
    if password == "secret":
        assert client.ok, client.summary()
        assert server.ok, server.summary()
    else:
        assert not server.ok and server.harness_failures, server.summary()
        if not proxy:  # SIPp itself can verify only the Authorization header
            assert server.exit_code == 1, server.summary()
            assert server.failure_reasons == {"FailedRegexpDoesntMatch": 1}
            assert client.exit_code == 1 and "403 Forbidden" in client.messages


# --------------------------------------------------------------------------- baresip


def test_baresip_answers_sipp_records_audio_and_dtmf(tmp_path: Path) -> None:
    """uac_call.xml (1 kHz + "123#") -> baresip auto-answers, plays 440 Hz, records."""
    with Baresip(workdir=tmp_path) as callee:
        with Sipp(
            "uac_call",
            remote=callee.address,
            service=callee.user,
            play=True,
            pcap=TONE_DTMF_PCAP,
            hold_ms=2500,
            timeout=15,
        ) as uac:
            callee.wait_for("CALL_ESTABLISHED", 5)
            result = uac.wait()
        callee.wait_for("CALL_CLOSED", 5)
        received = callee.recording("dec")
        sent = callee.recording("enc")
        digits = [e.param for e in callee.events if e.type == "CALL_DTMF_START"]
    assert result.ok, result.summary()
    assert result.rtp_sent >= 60, result.summary()
    assert "".join(digits) == TONE_DTMF_DIGITS
    assert wav_energy_dbfs(received) > -20  # the tone is at -13.5 dBFS RMS
    assert dominant_frequency(received) == pytest.approx(1000, abs=5)
    assert dominant_frequency(sent) == pytest.approx(440, abs=5)


def test_baresip_dials_sipp_echo_both_directions(tmp_path: Path) -> None:
    """baresip dials uas_answer.xml (-rtp_echo, SIPp hangs up): its 440 Hz comes back."""
    with Baresip(user="caller", workdir=tmp_path) as caller:
        with Sipp("uas_answer", rtp_echo=True, uas_bye=True, hold_ms=1500, timeout=10) as uas:
            caller.dial(uas.uri("echo"))
            caller.wait_for("CALL_ESTABLISHED", 5)
            result = uas.wait()
        caller.wait_for("CALL_CLOSED", 5)
        received = caller.recording("dec")
    assert result.ok, result.summary()
    assert result.rtp_echoed >= 40, result.summary()
    assert wav_energy_dbfs(received) > -20
    assert dominant_frequency(received) == pytest.approx(440, abs=5)


def test_baresip_sends_rfc4733_dtmf_to_baresip(tmp_path: Path) -> None:
    """baresip A dials baresip B (playing a 700 Hz WAV), sends "9*1"; B reports the digits."""
    wav = write_wav(tmp_path / "tone700.wav", tone(700.0, 0.5))
    with (
        Baresip(user="alice", workdir=tmp_path / "alice") as alice,
        Baresip(user="bob", play_wav=wav, workdir=tmp_path / "bob") as bob,
    ):
        alice.dial(bob.uri)
        alice.wait_for("CALL_ESTABLISHED", 5)
        bob.wait_for("CALL_ESTABLISHED", 5)
        alice.send_dtmf("9*1", gap=0.2)
        bob.wait_for(r"CALL_DTMF_START 1", 5)
        alice.hangup()
        bob.wait_for("CALL_CLOSED", 5)
        digits = [e.param for e in bob.events if e.type == "CALL_DTMF_START"]
        heard = alice.recording("dec")
    assert "".join(digits) == "9*1"
    assert dominant_frequency(heard) == pytest.approx(700, abs=5)


@pytest.mark.parametrize("proxy", [False, True], ids=["401", "407"])
def test_baresip_authenticates_to_uas_auth(proxy: bool) -> None:
    """baresip (auth_user/auth_pass) dials uas_auth.xml, which checks its digest."""
    with Baresip(user="alice", auth=("alice", "secret")) as caller:
        with Sipp("uas_auth", proxy_auth=proxy, timeout=10) as uas:
            caller.dial(uas.uri("dialflow"))
            caller.wait_for("CALL_ESTABLISHED", 5)
            time.sleep(0.3)
            caller.hangup()
            result = uas.wait()
    assert result.ok, result.summary()


def test_speech_fixture_plays_through_sipp(tmp_path: Path) -> None:
    """tests/interop/media/speech_hello.pcap (flite) reaches baresip as speech-band audio."""
    with Baresip(workdir=tmp_path) as callee:
        with Sipp(
            "uac_call",
            remote=callee.address,
            service=callee.user,
            play=True,
            pcap=SPEECH_PCAP,
            hold_ms=2500,
            timeout=15,
        ) as uac:
            result = uac.wait()
        callee.wait_for("CALL_CLOSED", 5)
        received = callee.recording("dec")
    assert result.ok, result.summary()
    assert wav_energy_dbfs(received) > -35
    assert 80 < dominant_frequency(received) < 3400


# --------------------------------------------------------------------------- harness policy


def test_missing_peer_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        Sipp("uas_answer")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        Baresip()


def _received(result: SippResult) -> list[str]:
    return received_messages(result.messages)
