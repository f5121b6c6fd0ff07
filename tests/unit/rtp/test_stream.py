"""RtpSender and RtpReceiver: header fields, marker, latching, loss and jitter statistics."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialflow.rtp.dtmf import DtmfDigit, DtmfSender
from dialflow.rtp.packet import RtpPacket, build_header
from dialflow.rtp.stream import FeedResult, RtpReceiver, RtpSender

PEER = ("192.0.2.10", 40000)
NAT = ("198.51.100.7", 61000)
SILENCE = b"\xff" * 160


def test_sender_random_initial_values_per_rfc3550() -> None:
    a = RtpSender(0, rng=random.Random(1))
    b = RtpSender(0, rng=random.Random(2))
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)
    c = RtpSender(0)  # system randomness
    assert 0 <= c.ssrc < 2**32 and 0 <= c.sequence < 2**16 and 0 <= c.timestamp < 2**32


def test_sender_fields_marker_and_wrap() -> None:
    s = RtpSender(8, ssrc=0xCAFE, sequence=0xFFFF, timestamp=0xFFFFFF00)
    p1 = RtpPacket.parse(s.audio_packet(b"\xd5" * 160))
    p2 = RtpPacket.parse(s.audio_packet(b"\xd5" * 160))
    assert (p1.marker, p1.payload_type, p1.sequence_number, p1.timestamp, p1.ssrc) == (
        True,
        8,
        0xFFFF,
        0xFFFFFF00,
        0xCAFE,
    )
    assert (p2.marker, p2.sequence_number, p2.timestamp) == (False, 0, 0xFFFFFFA0)
    assert s.packets_sent == 2 and s.octets_sent == 320


def test_write_audio_header_builds_the_same_packets_in_place() -> None:
    built = RtpSender(8, ssrc=0xCAFE, sequence=0xFFFF, timestamp=0xFFFFFF00)
    placed = RtpSender(8, ssrc=0xCAFE, sequence=0xFFFF, timestamp=0xFFFFFF00)
    buffer = bytearray(2 * 172)
    view = memoryview(buffer)
    for i, payload in enumerate((b"\xd5" * 160, bytes(range(160)))):
        if i:
            built.skip(2)  # the marker after a pause, too
            placed.skip(2)
        view[i * 172 + 12 : (i + 1) * 172] = payload
        placed.write_audio_header(view[i * 172 : (i + 1) * 172])
        assert bytes(view[i * 172 : (i + 1) * 172]) == built.audio_packet(payload)
    assert (placed.sequence, placed.timestamp) == (built.sequence, built.timestamp)
    assert (placed.packets_sent, placed.octets_sent) == (2, 320)


def test_sender_skip_advances_timestamp_and_marks_next_packet() -> None:
    s = RtpSender(0, ssrc=1, sequence=10, timestamp=1000)
    s.audio_packet(SILENCE)
    s.skip(3)  # on hold for three frames
    p = RtpPacket.parse(s.audio_packet(SILENCE))
    assert p.marker and p.sequence_number == 11 and p.timestamp == 1000 + 4 * 160


def test_sender_dtmf_gap_ticks_return_none_and_keep_the_clock() -> None:
    s = RtpSender(0, dtmf_payload_type=101, ssrc=1, sequence=0, timestamp=0)
    s.start_dtmf(DtmfSender("12", 20, gap_ms=40))
    kinds = []
    while s.dtmf_active:
        packet = s.dtmf_packet()
        if packet is None:
            kinds.append("audio")
            s.audio_packet(SILENCE)
        else:
            kinds.append(RtpPacket.parse(packet).payload_type)
    assert kinds == [101, 101, 101, "audio", "audio", 101, 101, 101]
    assert s.sequence == 8 and s.timestamp == 8 * 160
    with pytest.raises(RuntimeError):
        s.dtmf_packet()


def packet(seq: int, ts: int, *, ssrc: int = 0xABC, pt: int = 0, payload: bytes = SILENCE) -> bytes:
    return build_header(False, pt, seq, ts, ssrc) + payload


def test_receiver_latches_first_valid_address_and_ignores_others() -> None:
    rx = RtpReceiver(0, 101)
    assert rx.feed(packet(1, 0, pt=13), NAT, 0.0) is FeedResult.IGNORED  # comfort noise PT
    assert rx.remote is None
    assert rx.feed(packet(1, 0), PEER, 0.0) is FeedResult.LATCHED
    assert rx.remote == PEER
    assert rx.feed(packet(2, 160), PEER, 0.02) is FeedResult.ACCEPTED
    assert rx.feed(packet(3, 320, ssrc=0x666), NAT, 0.04) is FeedResult.IGNORED
    assert rx.stats.packets == 2 and rx.stats.ignored == 2


def test_receiver_relatches_after_consecutive_packets_with_our_ssrc() -> None:
    rx = RtpReceiver(0, relatch_after=3)
    rx.feed(packet(1, 0), PEER, 0.0)
    # The NAT binding changed: the same stream now arrives from another address.
    assert rx.feed(packet(2, 160), NAT, 0.02) is FeedResult.IGNORED
    assert rx.feed(packet(3, 320), NAT, 0.04) is FeedResult.IGNORED
    assert rx.feed(packet(4, 480), NAT, 0.06) is FeedResult.LATCHED
    assert rx.remote == NAT and rx.stats.relatches == 1


def test_receiver_does_not_relatch_while_old_address_is_alive() -> None:
    rx = RtpReceiver(0, relatch_after=3)
    rx.feed(packet(1, 0), PEER, 0.0)
    for i in range(10):
        rx.feed(packet(100 + i, 0), NAT, 0.0)  # copies of our SSRC from elsewhere
        rx.feed(packet(2 + i, 160 * (i + 1)), PEER, 0.02 * (i + 1))
    assert rx.remote == PEER and rx.stats.relatches == 0


def test_receiver_reset_latch_accepts_new_address() -> None:
    rx = RtpReceiver(0)
    rx.feed(packet(1, 0), PEER, 0.0)
    rx.reset_latch()
    assert rx.feed(packet(50, 0, ssrc=7), NAT, 0.1) is FeedResult.LATCHED


def test_receiver_loss_from_sequence_numbers() -> None:
    rx = RtpReceiver(0)
    for seq in (65530, 65531, 65533, 65535, 1, 2):  # 65532, 65534, 0 lost across the wrap
        rx.feed(packet(seq, 0), PEER, 0.0)
    stats = rx.update_stats()
    assert stats.lost == 3 and stats.packets == 6 and stats.octets == 6 * 160


def test_receiver_sequence_restart_needs_two_sequential_packets() -> None:
    rx = RtpReceiver(0)
    for seq in range(10, 20):
        rx.feed(packet(seq, 0), PEER, 0.0)
    assert rx.feed(packet(40000, 0), PEER, 0.2) is FeedResult.IGNORED  # a stray jump
    assert rx.feed(packet(20, 0), PEER, 0.22) is FeedResult.ACCEPTED
    assert rx.feed(packet(50000, 0), PEER, 0.3) is FeedResult.IGNORED
    assert rx.feed(packet(50001, 0), PEER, 0.32) is FeedResult.ACCEPTED  # restart confirmed
    rx.feed(packet(50003, 0), PEER, 0.36)
    assert rx.update_stats().lost == 1


def test_receiver_ssrc_change_from_latched_address() -> None:
    rx = RtpReceiver(0)
    rx.feed(packet(1, 0), PEER, 0.0)
    rx.feed(packet(3, 320), PEER, 0.04)  # one lost
    assert rx.feed(packet(900, 0, ssrc=0x999), PEER, 0.1) is FeedResult.ACCEPTED
    rx.feed(packet(901, 160, ssrc=0x999), PEER, 0.12)
    assert rx.ssrc == 0x999 and rx.stats.ssrc_changes == 1
    assert rx.update_stats().lost == 1


def test_receiver_interarrival_jitter_rfc3550_a8() -> None:
    rx = RtpReceiver(0)
    arrivals = [0.000, 0.020, 0.045, 0.060, 0.080, 0.110, 0.120]
    j = 0.0
    prev = None
    for i, t in enumerate(arrivals):
        rx.feed(packet(i, 1000 + 160 * i), PEER, 100.0 + t)
        transit = int((100.0 + t) * 8000) - (1000 + 160 * i)
        if prev is not None:
            j += (abs(transit - prev) - j) / 16
        prev = transit
    assert rx.stats.jitter == pytest.approx(j)
    assert j > 10  # the fixture has real jitter (transit varies by 40-80 units)
    assert rx.stats.jitter_ms == pytest.approx(j / 8)


def test_receiver_splits_audio_and_telephone_events() -> None:
    tx = RtpSender(0, dtmf_payload_type=101, rng=random.Random(3))
    rx = RtpReceiver(0, 101)
    tx.start_dtmf(DtmfSender("5", 60))
    results = []
    now = 0.0
    for _ in range(8):
        data = tx.dtmf_packet() if tx.dtmf_active else None
        if data is None:
            data = tx.audio_packet(SILENCE)
        results.append(rx.feed(data, PEER, now))
        now += 0.02
    assert results.count(FeedResult.DIGITS) == 1
    assert rx.pending_digits
    digits = rx.take_digits()
    assert [(d.digit, d.duration_ms) for d in digits] == [("5", 60)]
    assert isinstance(digits[0], DtmfDigit) and not rx.pending_digits
    # 5 DTMF packets held sequence numbers: the jitter buffer must not count them lost.
    for _ in range(10):
        rx.pop_audio()
    assert rx.jitter.stats.lost == 0
    assert rx.update_stats().lost == 0


def test_receiver_rejects_short_and_bad_version() -> None:
    rx = RtpReceiver(0)
    assert rx.feed(b"\x80\x00", PEER, 0.0) is FeedResult.IGNORED
    assert rx.feed(b"\x40" + packet(1, 0)[1:], PEER, 0.0) is FeedResult.IGNORED
    assert rx.stats.invalid == 2 and rx.remote is None


def test_receiver_accepts_packets_with_extension_via_full_parse() -> None:
    rx = RtpReceiver(0)
    wire = RtpPacket(0, 5, 0, 0xABC, SILENCE, csrc=(1,), padding=4).serialize()
    assert rx.feed(wire, PEER, 0.0) is FeedResult.LATCHED
    rx.jitter.target_depth = 1
    assert rx.pop_audio() == SILENCE


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 0xFFFF), n=st.integers(2, 300), data=st.data())
def test_property_loss_counts_missing_sequence_numbers_across_wrap(
    start: int, n: int, data: st.DataObject
) -> None:
    dropped = data.draw(st.sets(st.integers(1, n - 2))) if n > 2 else set()
    rx = RtpReceiver(0)
    for i in range(n):
        if i not in dropped:
            rx.feed(packet((start + i) & 0xFFFF, 160 * i), PEER, 0.02 * i)
    stats = rx.update_stats()
    assert stats.lost == len(dropped)
    assert stats.packets == n - len(dropped)
