"""RTP packet parsing/serialization against hand-decoded wire fixtures (RFC 3550 §5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialflow.rtp.packet import (
    HEADER_SIZE,
    RtpError,
    RtpExtension,
    RtpPacket,
    build_header,
    pack_header_into,
    seq_add,
    seq_diff,
    seq_lt,
)

# PCMU, marker set (start of talkspurt), seq 8000, ts 800, SSRC 0xdeadbeef, 160 bytes of silence.
PCMU_MARKER = bytes.fromhex("80801f4000000320deadbeef") + b"\xff" * 160
# RFC 4733 telephone-event (PT 101), digit 5, E bit, volume 10, duration 800.
TELEPHONE_EVENT = bytes.fromhex("80651f4100000320deadbeef058a0320")
# PCMA with 2 CSRCs and an RFC 8285 one-byte-header extension (profile 0xBEDE, 1 word),
# seq 65535 and ts 0xffffffff (both about to wrap).
CSRC_AND_EXTENSION = bytes.fromhex("9208ffffffffffff000000011111111122222222bede000110aa0000d5d5")
# Padded: payload 01 02 followed by 3 octets of padding (last octet counts them).
PADDED = bytes.fromhex("a000000100000000123456780102000003")


def test_parse_pcmu_with_marker() -> None:
    p = RtpPacket.parse(PCMU_MARKER)
    assert (p.marker, p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (
        True,
        0,
        8000,
        800,
        0xDEADBEEF,
    )
    assert p.payload == b"\xff" * 160
    assert p.csrc == () and p.extension is None and p.padding == 0
    assert p.serialize() == PCMU_MARKER


def test_parse_telephone_event() -> None:
    p = RtpPacket.parse(TELEPHONE_EVENT)
    assert (p.marker, p.payload_type, p.sequence_number) == (False, 101, 8001)
    assert p.payload == bytes.fromhex("058a0320")
    assert p.serialize() == TELEPHONE_EVENT


def test_parse_csrc_and_extension_round_trip() -> None:
    p = RtpPacket.parse(CSRC_AND_EXTENSION)
    assert p.payload_type == 8 and not p.marker
    assert p.sequence_number == 0xFFFF and p.timestamp == 0xFFFFFFFF and p.ssrc == 1
    assert p.csrc == (0x11111111, 0x22222222)
    assert p.extension == RtpExtension(0xBEDE, bytes.fromhex("10aa0000"))
    assert p.payload == b"\xd5\xd5"
    assert p.serialize() == CSRC_AND_EXTENSION


def test_parse_padding_strips_it_and_serialize_restores_it() -> None:
    p = RtpPacket.parse(PADDED)
    assert p.payload == b"\x01\x02" and p.padding == 3
    assert (p.sequence_number, p.ssrc) == (1, 0x12345678)
    assert p.serialize() == PADDED


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("8000000100000000123456"),  # 11 bytes
        bytes.fromhex("4000000100000000123456780102"),  # version 1
        bytes.fromhex("0000000100000000123456780102"),  # version 0
        bytes.fromhex("c000000100000000123456780102"),  # version 3
        bytes.fromhex("8200000100000000123456781111"),  # 2 CSRCs announced, 1 short
        bytes.fromhex("9000000100000000123456780102"),  # extension header cut off
        bytes.fromhex("900000010000000012345678bede000210aa0000"),  # ext too long
        bytes.fromhex("a000000100000000123456780102000000"),  # padding count 0
        bytes.fromhex("a00000010000000012345678010214"),  # padding count 20 > packet
    ],
)
def test_parse_rejects_garbage(data: bytes) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(data)


def test_rtp_error_is_a_value_error() -> None:
    assert issubclass(RtpError, ValueError)


def test_build_header_fast_path() -> None:
    assert build_header(True, 0, 8000, 800, 0xDEADBEEF) == PCMU_MARKER[:HEADER_SIZE]
    # Sequence and timestamp are taken modulo their field sizes.
    assert build_header(False, 8, 0x1FFFF, 0x1_0000_0005, 1) == bytes.fromhex(
        "8008ffff0000000500000001"
    )
    with pytest.raises(ValueError):
        build_header(False, 128, 0, 0, 0)


def test_pack_header_into_reused_buffer() -> None:
    buf = bytearray(20)
    pack_header_into(buf, 4, True, 0, 8000, 800, 0xDEADBEEF)
    assert bytes(buf[4:16]) == PCMU_MARKER[:HEADER_SIZE]
    assert bytes(buf[:4]) == bytes(4)


def test_serialize_validates_fields() -> None:
    with pytest.raises(ValueError):
        RtpPacket(payload_type=200, sequence_number=0, timestamp=0, ssrc=0).serialize()
    with pytest.raises(ValueError):
        RtpPacket(0, 0, 0, 0, csrc=tuple(range(16))).serialize()
    with pytest.raises(ValueError):
        RtpPacket(0, 0, 0, 1 << 32).serialize()
    with pytest.raises(ValueError):
        RtpPacket(0, 0, 0, 0, extension=RtpExtension(1, b"abc")).serialize()


def test_sequence_helpers_wrap() -> None:
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(100, 100) == 0
    assert seq_diff(0x8000, 0) == -0x8000
    assert seq_lt(65530, 3) and not seq_lt(3, 65530)
    assert seq_add(65535, 2) == 1


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=300),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    padding=st.integers(0, 255),
)


@given(packets)
def test_serialize_parse_round_trip(packet: RtpPacket) -> None:
    wire = packet.serialize()
    assert RtpPacket.parse(wire) == packet
    assert RtpPacket.parse(wire).serialize() == wire


@given(st.binary(max_size=64))
def test_parse_never_raises_anything_but_rtp_error(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except RtpError:
        return
    assert len(p.payload) <= len(data) - HEADER_SIZE
