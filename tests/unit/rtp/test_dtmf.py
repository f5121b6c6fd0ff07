"""RFC 4733 telephone-events: exact sender packet sequence, receiver dedupe and loss."""

from __future__ import annotations

import random

import pytest

from dialflow.rtp.dtmf import DtmfDigit, DtmfEvent, DtmfReceiver, DtmfSender, validate_digits
from dialflow.rtp.packet import RtpPacket
from dialflow.rtp.stream import RtpSender


def test_event_payload_layout() -> None:
    # RFC 4733 §2.3: event, E|R|volume, 16-bit duration.
    assert DtmfEvent(1, False, 10, 160).serialize() == bytes.fromhex("010a00a0")
    assert DtmfEvent(11, True, 10, 800).serialize() == bytes.fromhex("0b8a0320")
    assert DtmfEvent.parse(bytes.fromhex("0b8a0320")) == DtmfEvent(11, True, 10, 800)
    # The reserved bit is ignored on receipt.
    assert DtmfEvent.parse(bytes.fromhex("05ca0010")) == DtmfEvent(5, True, 10, 16)


def test_one_digit_exact_packet_sequence() -> None:
    sender = RtpSender(0, dtmf_payload_type=101, ssrc=0x01020304, sequence=100, timestamp=16000)
    sender.audio_packet(b"\xff" * 160)  # one audio frame first: seq 100, ts 16000
    sender.start_dtmf(DtmfSender("1", 100))
    packets = []
    while sender.dtmf_active:
        packet = sender.dtmf_packet()
        assert packet is not None
        packets.append(packet)
    after = RtpPacket.parse(sender.audio_packet(b"\xff" * 160))

    # 100 ms = 5 frames: 4 updates (160..640), then the end packet (800) three times.
    expected = [
        "80e5006500003f2001020304010a00a0",  # marker, event ts = 16160
        "8065006600003f2001020304010a0140",
        "8065006700003f2001020304010a01e0",
        "8065006800003f2001020304010a0280",
        "8065006900003f2001020304018a0320",  # E bit, duration 800
        "8065006a00003f2001020304018a0320",
        "8065006b00003f2001020304018a0320",
    ]
    assert [p.hex() for p in packets] == expected
    # Audio resumes on the same clock: 7 ticks of 160 after the event start.
    assert after.sequence_number == 0x6C
    assert after.timestamp == 16160 + 7 * 160
    assert after.payload_type == 0 and not after.marker


def test_sender_ticks_gap_pause_and_short_tone() -> None:
    ticks = list(DtmfSender("12", 100, gap_ms=50))
    # digit 1 (7 ticks) + gap ceil(50/20)=3 audio ticks + digit 2 (7 ticks)
    assert len(ticks) == 17
    assert ticks[7:10] == [None, None, None]
    assert [t is None for t in ticks].count(True) == 3

    paused = list(DtmfSender("1w2", 100, pause_ms=500))
    assert paused[7 : 7 + 25] == [None] * 25 and len(paused) == 7 + 25 + 7

    short = list(DtmfSender("#", 20))
    assert len(short) == 3
    assert all(t is not None for t in short)
    assert [t.start for t in short if t] == [True, False, False]
    assert {DtmfEvent.parse(t.payload) for t in short if t} == {DtmfEvent(11, True, 10, 160)}


def test_sender_events_for_all_digits() -> None:
    events = [
        DtmfEvent.parse(t.payload).event
        for t in DtmfSender("0123456789*#ABCDabcd", 20, gap_ms=0)
        if t is not None and t.start
    ]
    assert events == [*range(16), 12, 13, 14, 15]


@pytest.mark.parametrize("bad", ["", "12x", "1 2", "E"])
def test_sender_rejects_invalid_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        DtmfSender(bad)


def test_validate_digits_normalises_case() -> None:
    assert validate_digits("12abw#") == "12ABw#"
    with pytest.raises(ValueError):
        DtmfSender("1", 9000)  # over the 16-bit duration of one event
    with pytest.raises(ValueError):
        DtmfSender("1", volume=64)


def test_start_dtmf_needs_negotiated_payload_type() -> None:
    with pytest.raises(RuntimeError):
        RtpSender(0).start_dtmf(DtmfSender("1"))


def _feed_all(rx: DtmfReceiver, sender: RtpSender, digits: str) -> list[DtmfDigit]:
    sender.start_dtmf(DtmfSender(digits, 100))
    out: list[DtmfDigit] = []
    now = 0.0
    while sender.dtmf_active:
        packet = sender.dtmf_packet()
        now += 0.02
        if packet is not None:
            out.extend(rx.feed(RtpPacket.parse(packet), now))
        else:
            sender.audio_packet(b"\xff" * 160)
    return out


def test_receiver_reports_each_digit_once_despite_three_end_packets() -> None:
    sender = RtpSender(0, dtmf_payload_type=101, rng=random.Random(1))
    digits = _feed_all(DtmfReceiver(), sender, "123#")
    assert [d.digit for d in digits] == ["1", "2", "3", "#"]
    assert all(d.duration_ms == 100 for d in digits)
    assert len({d.timestamp for d in digits}) == 4


def test_receiver_reports_at_first_end_packet() -> None:
    rx = DtmfReceiver()
    ts = 1234
    assert rx.feed_payload(ts, DtmfEvent(9, False, 10, 160).serialize(), 0.0) == ()
    assert rx.feed_payload(ts, DtmfEvent(9, False, 10, 320).serialize(), 0.02) == ()
    end = DtmfEvent(9, True, 10, 480).serialize()
    assert rx.feed_payload(ts, end, 0.04) == (DtmfDigit("9", 60, ts),)
    assert rx.feed_payload(ts, end, 0.06) == ()
    assert rx.feed_payload(ts, end, 0.08) == ()
    assert rx.poll(10.0) == ()


def test_receiver_lost_end_packets_reported_when_next_event_starts() -> None:
    rx = DtmfReceiver()
    assert rx.feed_payload(100, DtmfEvent(4, False, 10, 320).serialize(), 0.0) == ()
    # The next event starts and is itself a complete 20 ms event: two digits at once.
    got = rx.feed_payload(2000, DtmfEvent(7, True, 10, 160).serialize(), 0.3)
    assert got == (DtmfDigit("4", 40, 100), DtmfDigit("7", 20, 2000))
    # A late end packet of the first event is not reported again.
    assert rx.feed_payload(100, DtmfEvent(4, True, 10, 800).serialize(), 0.31) == ()


def test_receiver_lost_end_packets_reported_by_poll_after_timeout() -> None:
    rx = DtmfReceiver(timeout=0.4)
    rx.feed_payload(500, DtmfEvent(0, False, 10, 160).serialize(), 1.0)
    assert rx.next_deadline() == pytest.approx(1.4)
    assert rx.poll(1.3) == ()
    assert rx.poll(1.41) == (DtmfDigit("0", 20, 500),)
    assert rx.poll(2.0) == ()
    assert rx.next_deadline() is None


def test_receiver_same_key_twice_is_two_digits() -> None:
    rx = DtmfReceiver()
    end = DtmfEvent(5, True, 10, 800).serialize()
    assert rx.feed_payload(1000, end, 0.0) == (DtmfDigit("5", 100, 1000),)
    assert rx.feed_payload(3000, end, 0.3) == (DtmfDigit("5", 100, 3000),)


def test_receiver_ignores_non_dtmf_events_and_garbage() -> None:
    rx = DtmfReceiver()
    assert rx.feed_payload(1, DtmfEvent(16, True, 10, 800).serialize(), 0.0) == ()  # flash
    assert rx.feed_payload(2, b"\x01", 0.0) == ()
    assert rx.poll(100.0) == ()
