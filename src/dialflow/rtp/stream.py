"""One direction each of an RTP session: ``RtpSender`` and ``RtpReceiver``.

Sans-I/O: the sender turns 20 ms payloads into packets (bytes) and the receiver takes
datagrams with their source address and an injected ``now``. The asyncio layer
(``dialflow.media``) owns the socket and the clock.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Final

from dialflow.rtp.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from dialflow.rtp.jitter import JitterBuffer
from dialflow.rtp.packet import HEADER, HEADER_SIZE, RtpError, RtpPacket

__all__ = ["FeedResult", "ReceiverStats", "RtpReceiver", "RtpSender"]

Address = tuple[str, int] | tuple[str, int, int, int]

_SYSRANDOM: Final = random.SystemRandom()
_pack = HEADER.pack
_pack_into = HEADER.pack_into
_unpack_from = HEADER.unpack_from

# RFC 3550 §A.1 constants for source sequence validation.
_MAX_DROPOUT: Final = 3000
_MAX_MISORDER: Final = 100


class RtpSender:
    """Builds outgoing packets on one SSRC, one frame per media-clock tick.

    RFC 3550 §5.1: SSRC, initial sequence number and initial timestamp are random.
    The timestamp advances by ``samples_per_frame`` every tick whether or not a packet
    goes out (``skip``), so it always tracks the sampling clock; the marker bit is set
    on the first packet and on the first packet after a pause (RFC 3551 §4.1: the
    start of a talkspurt). While a ``DtmfSender`` is active, its RFC 4733 packets take
    the place of audio packets on the same sequence and timestamp clock.
    """

    __slots__ = (
        "_dtmf",
        "_event_ts",
        "_marker",
        "_seq",
        "_ts",
        "dtmf_payload_type",
        "octets_sent",
        "packets_sent",
        "payload_type",
        "samples_per_frame",
        "ssrc",
    )

    def __init__(
        self,
        payload_type: int,
        *,
        dtmf_payload_type: int | None = None,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        samples_per_frame: int = 160,
        rng: random.Random | None = None,
    ) -> None:
        r = rng if rng is not None else _SYSRANDOM
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.ssrc = r.getrandbits(32) if ssrc is None else ssrc
        self._seq = r.getrandbits(16) if sequence is None else sequence & 0xFFFF
        self._ts = r.getrandbits(32) if timestamp is None else timestamp & 0xFFFFFFFF
        self.samples_per_frame = samples_per_frame
        self._marker = True
        self._dtmf: DtmfSender | None = None
        self._event_ts = 0
        self.packets_sent = 0
        self.octets_sent = 0

    @property
    def sequence(self) -> int:
        """The sequence number the next packet will carry."""
        return self._seq

    @property
    def timestamp(self) -> int:
        """The RTP timestamp of the next frame."""
        return self._ts

    def audio_packet(self, payload: bytes) -> bytes:
        """The next audio packet carrying ``payload`` (one frame); advances seq and timestamp."""
        header = bytearray(HEADER_SIZE)
        self._write_header(header, len(payload))
        return bytes(header) + payload

    def write_audio_header(self, packet: bytearray | memoryview) -> None:
        """Write the next audio header into ``packet[:12]``, whose payload follows it.

        The same packet as ``audio_packet(packet[12:])`` without building it: the media
        clock encodes a whole batch of payloads into one buffer and each leg only
        writes its header in front of its own (no allocation per packet).
        """
        self._write_header(packet, len(packet) - HEADER_SIZE)

    def _write_header(self, buf: bytearray | memoryview, payload_len: int) -> None:
        """Write the next header at ``buf[0:12]`` and advance (marker once, seq, ts, counts)."""
        marker = self._marker
        _pack_into(
            buf,
            0,
            0x80,
            (0x80 | self.payload_type) if marker else self.payload_type,
            self._seq,
            self._ts,
            self.ssrc,
        )
        if marker:
            self._marker = False
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + self.samples_per_frame) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += payload_len

    def skip(self, frames: int = 1) -> None:
        """Let ``frames`` ticks pass without sending (hold, clock catch-up).

        The timestamp still advances so the receiver sees a silence period, not a
        time warp, and the next packet carries the marker bit (new talkspurt).
        """
        self._ts = (self._ts + frames * self.samples_per_frame) & 0xFFFFFFFF
        self._marker = True

    @property
    def dtmf_active(self) -> bool:
        """True while a digit string is being sent; audio is paused meanwhile."""
        return self._dtmf is not None

    def start_dtmf(self, dtmf: DtmfSender) -> None:
        """Begin sending a digit string at the next tick (RFC 4733)."""
        if self.dtmf_payload_type is None:
            raise RuntimeError("telephone-event was not negotiated for this stream")
        if self._dtmf is not None:
            raise RuntimeError("a DTMF string is already being sent")
        if not dtmf.done:
            self._dtmf = dtmf

    def dtmf_packet(self) -> bytes | None:
        """This tick's DTMF packet, or None for a gap tick (send ``audio_packet`` then).

        Call once per tick while ``dtmf_active``. An event's packets all carry the RTP
        timestamp of the tick on which it started (RFC 4733 §2.5.1.1), while the
        stream's own timestamp keeps advancing one frame per tick.
        """
        dtmf = self._dtmf
        if dtmf is None or self.dtmf_payload_type is None:
            raise RuntimeError("no DTMF in progress")
        tick = next(dtmf)
        if dtmf.done:
            self._dtmf = None
        if tick is None:
            return None
        if tick.start:
            self._event_ts = self._ts
        header = _pack(
            0x80,
            (0x80 | self.dtmf_payload_type) if tick.start else self.dtmf_payload_type,
            self._seq,
            self._event_ts,
            self.ssrc,
        )
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + self.samples_per_frame) & 0xFFFFFFFF
        self.packets_sent += 1
        self.octets_sent += len(tick.payload)
        return header + tick.payload

    def cancel_dtmf(self) -> None:
        """Abandon the digit string in progress (the peer may miss the last end packet)."""
        self._dtmf = None


class FeedResult(enum.Enum):
    """What ``RtpReceiver.feed`` did with a datagram."""

    IGNORED = "ignored"  # not RTP, unknown payload type, or from an address we do not listen to
    ACCEPTED = "accepted"  # audio or telephone-event packet taken
    DIGITS = "digits"  # accepted, and DTMF digits completed: call take_digits()
    LATCHED = "latched"  # accepted, and the remote address changed: re-read ``remote``


@dataclass(slots=True)
class ReceiverStats:
    """Counters of one receiver (RFC 3550 §6.4.1 report-block quantities)."""

    packets: int = 0
    octets: int = 0
    ignored: int = 0
    invalid: int = 0
    relatches: int = 0
    ssrc_changes: int = 0
    lost: int = 0
    jitter: float = 0.0  # RFC 3550 §A.8 interarrival jitter, timestamp units
    clock_rate: int = 8000

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter in milliseconds."""
        return self.jitter * 1000.0 / self.clock_rate


class RtpReceiver:
    """Validates incoming datagrams, latches the peer's address, feeds jitter buffer and DTMF.

    Symmetric RTP (RFC 4961): the first valid packet (version 2, one of our payload
    types) latches its source address and SSRC; packets from other addresses are
    ignored, except that ``relatch_after`` consecutive packets carrying the latched SSRC
    from one new address move the latch there (a NAT rebinding). A packet from the
    latched address resets that count, so a stream that is still alive cannot be
    hijacked by a copy of it.
    """

    __slots__ = (
        "_base_ext",
        "_bad_seq",
        "_candidate",
        "_candidate_count",
        "_digits",
        "_have_transit",
        "_lost_before",
        "_max_ext",
        "_received",
        "_transit",
        "clock_rate",
        "dtmf",
        "dtmf_payload_type",
        "jitter",
        "payload_type",
        "relatch_after",
        "remote",
        "ssrc",
        "stats",
    )

    def __init__(
        self,
        payload_type: int,
        dtmf_payload_type: int | None = None,
        *,
        clock_rate: int = 8000,
        jitter: JitterBuffer | None = None,
        dtmf: DtmfReceiver | None = None,
        relatch_after: int = 5,
    ) -> None:
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.clock_rate = clock_rate
        self.jitter = jitter if jitter is not None else JitterBuffer()
        self.dtmf = dtmf if dtmf is not None else DtmfReceiver(clock_rate)
        self.relatch_after = relatch_after
        self.remote: Address | None = None
        self.ssrc: int | None = None
        self.stats = ReceiverStats(clock_rate=clock_rate)
        self._candidate: Address | None = None
        self._candidate_count = 0
        self._digits: list[DtmfDigit] = []
        self._max_ext = 0
        self._base_ext = 0
        self._received = 0
        self._lost_before = 0
        self._bad_seq = -1
        self._transit = 0
        self._have_transit = False

    def feed(self, data: bytes, addr: Address, now: float) -> FeedResult:
        """Take one datagram from ``addr`` received at ``now`` (seconds, monotonic)."""
        if len(data) < HEADER_SIZE:
            self.stats.invalid += 1
            return FeedResult.IGNORED
        b0, b1, seq, ts, ssrc = _unpack_from(data)
        if (
            b0 == 0x80
            and ssrc == self.ssrc
            and (b1 & 0x7F) == self.payload_type
            and addr == self.remote
            and self._candidate is None
        ):
            # Fast path, ~every packet of a call (it runs 50 times a second per call):
            # plain audio header, latched address, known source, sequence number ahead
            # by less than _MAX_DROPOUT. Same effect as the general path below.
            d = (seq - self._max_ext) & 0xFFFF
            if 0 < d < _MAX_DROPOUT:
                self._max_ext += d
                self._received += 1
                payload = data[HEADER_SIZE:]
                stats = self.stats
                stats.packets += 1
                stats.octets += len(payload)
                transit = int(now * self.clock_rate) - ts
                if self._have_transit:
                    j = ((transit - self._transit + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                    if j < 0:
                        j = -j
                    stats.jitter += (j - stats.jitter) / 16.0
                else:
                    self._have_transit = True
                self._transit = transit
                self.jitter.insert(seq, ts, ssrc, payload)
                return FeedResult.ACCEPTED
        if b0 == 0x80:
            payload = data[HEADER_SIZE:]  # the common case: no padding, extension, CSRC
        else:
            try:
                payload = RtpPacket.parse(data).payload
            except RtpError:
                self.stats.invalid += 1
                return FeedResult.IGNORED
        pt = b1 & 0x7F
        if pt == self.payload_type:
            audio = True
        elif pt == self.dtmf_payload_type:
            audio = False
        else:
            # Includes RTCP multiplexed on the RTP port (RFC 5761: PT 72-76 after masking).
            self.stats.ignored += 1
            return FeedResult.IGNORED

        result = FeedResult.ACCEPTED
        if addr != self.remote:
            if self.remote is None:
                self.remote = addr
                result = FeedResult.LATCHED
            elif ssrc == self.ssrc:
                if addr == self._candidate:
                    self._candidate_count += 1
                else:
                    self._candidate = addr
                    self._candidate_count = 1
                if self._candidate_count < self.relatch_after:
                    self.stats.ignored += 1
                    return FeedResult.IGNORED
                self.remote = addr
                self._candidate = None
                self.stats.relatches += 1
                result = FeedResult.LATCHED
            else:
                self.stats.ignored += 1
                return FeedResult.IGNORED
        elif self._candidate is not None:
            self._candidate = None

        if ssrc != self.ssrc:
            self._new_source(ssrc, seq)
        elif not self._update_seq(seq):
            self.stats.ignored += 1
            return result if result is FeedResult.LATCHED else FeedResult.IGNORED

        self.stats.packets += 1
        self.stats.octets += len(payload)
        if audio:
            # RFC 3550 §A.8: J += (|D| - J) / 16, D from transit-time differences.
            # Only audio: telephone-event timestamps mark the event start, not sampling.
            transit = int(now * self.clock_rate) - ts
            if self._have_transit:
                d = ((transit - self._transit + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                if d < 0:
                    d = -d
                self.stats.jitter += (d - self.stats.jitter) / 16.0
            else:
                self._have_transit = True
            self._transit = transit
            self.jitter.insert(seq, ts, ssrc, payload)
            return result
        # A telephone-event packet uses up a sequence number without carrying audio.
        self.jitter.insert(seq, ts, ssrc, None)
        digits = self.dtmf.feed_payload(ts, payload, now)
        if digits:
            self._digits.extend(digits)
            if result is FeedResult.ACCEPTED:
                result = FeedResult.DIGITS
        return result

    def pop_audio(self) -> bytes | None:
        """This tick's audio payload from the jitter buffer (None: conceal)."""
        return self.jitter.pop()

    def poll(self, now: float) -> bool:
        """Time-driven work (a DTMF event whose end packets were lost); True if digits wait."""
        digits = self.dtmf.poll(now)
        if digits:
            self._digits.extend(digits)
        return bool(self._digits)

    @property
    def pending_digits(self) -> bool:
        """True if digits wait to be taken with ``take_digits``."""
        return bool(self._digits)

    def take_digits(self) -> list[DtmfDigit]:
        """Digits completed since the last call, oldest first."""
        digits = self._digits
        self._digits = []
        return digits

    def reset_latch(self) -> None:
        """Forget the latched address (e.g. a re-INVITE moved the peer): next packet latches."""
        self.remote = None
        self._candidate = None
        self._candidate_count = 0

    def update_stats(self) -> ReceiverStats:
        """Refresh ``stats.lost`` (RFC 3550 §A.3 cumulative loss) and return the stats."""
        expected = self._max_ext - self._base_ext + 1 if self.ssrc is not None else 0
        self.stats.lost = self._lost_before + max(0, expected - self._received)
        return self.stats

    def _new_source(self, ssrc: int, seq: int) -> None:
        if self.ssrc is not None:
            self.stats.ssrc_changes += 1
            self.update_stats()
            self._lost_before = self.stats.lost
            self.dtmf.reset()
        self.ssrc = ssrc
        self._base_ext = self._max_ext = 0x10000 + seq
        self._received = 1
        self._bad_seq = -1
        self._have_transit = False

    def _update_seq(self, seq: int) -> bool:
        """RFC 3550 §A.1 sequence tracking; False for a packet to leave out of the stats."""
        d = (seq - self._max_ext) & 0xFFFF
        if d < _MAX_DROPOUT:
            if d:
                self._max_ext += d
        elif d <= 0x10000 - _MAX_MISORDER:
            # A big jump: believe it only if the next packet continues from it (restart).
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
            self.update_stats()
            self._lost_before = self.stats.lost
            self._base_ext = self._max_ext = 0x10000 + seq
            self._received = 0
            self._bad_seq = -1
        # else: duplicate or reordered packet, counted as received (RFC 3550 §A.3).
        self._received += 1
        return True
