"""RTP packets (RFC 3550 §5.1): parse, serialize, a fast header builder, sequence arithmetic.

Sans-I/O: bytes in, objects out. The general ``RtpPacket`` keeps every header field
(padding, header extension, CSRC list) so a packet round-trips exactly; the hot paths
(``build_header`` for the sender, ``HEADER.unpack_from`` in the receiver) avoid
creating objects per packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "RTP_VERSION",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "build_header",
    "pack_header_into",
    "seq_add",
    "seq_diff",
    "seq_lt",
]

RTP_VERSION: Final = 2
#: Fixed header length without CSRCs or extension (RFC 3550 §5.1).
HEADER_SIZE: Final = 12
#: V/P/X/CC byte, M/PT byte, sequence number, timestamp, SSRC — network byte order.
HEADER: Final = struct.Struct("!BBHII")
_EXT_HEADER: Final = struct.Struct("!HH")

_SEQ_MOD: Final = 1 << 16
_SEQ_HALF: Final = 1 << 15


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP packet."""


@dataclass(slots=True, frozen=True)
class RtpExtension:
    """RFC 3550 §5.3.1 header extension: a 16-bit profile value and 32-bit-word data."""

    profile: int
    data: bytes = b""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet with every RFC 3550 §5.1 header field.

    ``padding`` is the number of padding octets (including the count octet) that
    followed the payload, 0 when the P bit is clear; ``serialize`` re-creates them
    as zeros ending in the count. The version is always 2.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one datagram; raise ``RtpError`` if it is short, not version 2 or inconsistent."""
        data = bytes(data)
        size = len(data)
        if size < HEADER_SIZE:
            raise RtpError(f"RTP packet too short: {size} bytes")
        b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {b0 >> 6}, expected 2")
        offset = HEADER_SIZE
        cc = b0 & 0x0F
        if offset + 4 * cc > size:
            raise RtpError(f"RTP packet truncated in CSRC list ({cc} CSRCs, {size} bytes)")
        csrc = struct.unpack_from(f"!{cc}I", data, offset) if cc else ()
        offset += 4 * cc

        extension = None
        if b0 & 0x10:
            # RFC 3550 §5.3.1: 16-bit profile-defined value, 16-bit length in 32-bit words.
            if offset + 4 > size:
                raise RtpError("RTP packet truncated in extension header")
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            offset += 4
            if offset + 4 * words > size:
                raise RtpError("RTP extension longer than the packet")
            extension = RtpExtension(profile, data[offset : offset + 4 * words])
            offset += 4 * words

        end = size
        padding = 0
        if b0 & 0x20:
            # RFC 3550 §5.1: the last octet counts the padding octets, itself included.
            padding = data[-1]
            if padding == 0 or offset + padding > size:
                raise RtpError(f"RTP padding count {padding} is invalid")
            end -= padding

        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=data[offset:end],
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        """The packet on the wire; ValueError if a field is out of range."""
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRCs fit in an RTP header")
        if not 0 <= self.padding <= 255:
            raise ValueError("RTP padding must be 0..255 octets")
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} out of range")
        if not 0 <= self.ssrc <= 0xFFFFFFFF or any(not 0 <= c <= 0xFFFFFFFF for c in self.csrc):
            raise ValueError("SSRC and CSRC identifiers are 32-bit unsigned")
        parts = [
            HEADER.pack(
                b0,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            ext = self.extension
            if not 0 <= ext.profile <= 0xFFFF or len(ext.data) > 4 * 0xFFFF:
                raise ValueError("RTP extension profile or length out of range")
            if len(ext.data) % 4:
                raise ValueError("RTP extension data must be a multiple of 4 octets")
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


def build_header(
    marker: bool, payload_type: int, sequence_number: int, timestamp: int, ssrc: int
) -> bytes:
    """The 12-byte fixed header of a plain packet (no padding, extension or CSRC).

    One precompiled ``struct.pack``: this is the sender's per-packet cost.
    """
    if not 0 <= payload_type <= 127:
        raise ValueError(f"payload type {payload_type} out of range")
    return HEADER.pack(
        0x80,
        (0x80 if marker else 0) | payload_type,
        sequence_number & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )


def pack_header_into(
    buffer: bytearray | memoryview,
    offset: int,
    marker: bool,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
) -> None:
    """Write a plain 12-byte header into a reused buffer at ``offset`` (no allocation)."""
    HEADER.pack_into(
        buffer,
        offset,
        0x80,
        (0x80 if marker else 0) | (payload_type & 0x7F),
        sequence_number & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 16-bit sequence numbers, in [-32768, 32767].

    RFC 3550 §A.1: sequence numbers wrap, so the shorter way round is the true one.
    """
    d = (a - b) & 0xFFFF
    return d - _SEQ_MOD if d >= _SEQ_HALF else d


def seq_lt(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes before ``b`` (modulo 2^16)."""
    return seq_diff(a, b) < 0


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2^16."""
    return (seq + n) & 0xFFFF
