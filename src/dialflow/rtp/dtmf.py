"""RFC 4733 telephone-events (DTMF over RTP): payload codec, tick-driven sender, deduping receiver.

Sans-I/O. The sender does not know about time or sockets: the media clock asks it for
one tick's worth (20 ms) at a time and the RTP sender puts the payload in a packet that
takes the place of that tick's audio packet, on the same RTP clock. The receiver takes
payloads with their RTP timestamp and an injected ``now``.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from dialflow.rtp.packet import RtpPacket

__all__ = [
    "DTMF_DIGITS",
    "DtmfDigit",
    "DtmfError",
    "DtmfEvent",
    "DtmfReceiver",
    "DtmfSender",
    "DtmfTick",
    "validate_digits",
]

#: RFC 4733 §3.2 table 3: events 0-15 are the DTMF digits, in this order.
DTMF_DIGITS: Final = "0123456789*#ABCD"
_EVENT_OF: Final = {d: i for i, d in enumerate(DTMF_DIGITS)}
#: In a digit string, a pause between digits (dial-string convention).
PAUSE_CHARS: Final = frozenset("wW")
_PAYLOAD: Final = struct.Struct("!BBH")
#: RFC 4733 §2.3.5: duration is an unsigned 16-bit count of timestamp units.
_MAX_DURATION: Final = 0xFFFF


class DtmfError(ValueError):
    """A telephone-event payload that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """The 4-byte RFC 4733 §2.3 event payload.

    ``duration`` is in RTP timestamp units (1/8000 s for G.711 sessions);
    ``volume`` is the power level in -dBm0 (0..63).
    """

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> DtmfEvent:
        """Parse the first event of a payload; ``DtmfError`` if shorter than 4 bytes."""
        if len(payload) < 4:
            raise DtmfError(f"telephone-event payload too short: {len(payload)} bytes")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)

    def serialize(self) -> bytes:
        """The 4-byte payload (R bit zero, RFC 4733 §2.3.3)."""
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63:
            raise ValueError("event must be 0..255 and volume 0..63")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise ValueError("duration must fit 16 bits")
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


@dataclass(frozen=True, slots=True)
class DtmfTick:
    """One 20 ms tick of an outgoing event: the payload, and whether it starts the event.

    RFC 4733 §2.5.1.1: the first packet of an event carries the RTP marker bit and its
    RTP timestamp becomes the event's timestamp, kept by every later packet of the event.
    """

    payload: bytes
    start: bool


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A received digit, reported once per event however many end packets arrive."""

    digit: str
    duration_ms: int
    timestamp: int


def validate_digits(digits: str) -> str:
    """Normalise a dial string (``a-d`` to upper case) and refuse unknown characters."""
    if not digits:
        raise ValueError("empty DTMF digit string")
    out = []
    for ch in digits:
        up = ch.upper() if ch in "abcd" else ch
        if up not in _EVENT_OF and ch not in PAUSE_CHARS:
            raise ValueError(f"invalid DTMF character {ch!r} in {digits!r}")
        out.append(up)
    return "".join(out)


class DtmfSender(Iterator["DtmfTick | None"]):
    """Turn a digit string into per-tick RFC 4733 payloads.

    Iterate once per 20 ms tick: a ``DtmfTick`` is the packet to send instead of audio,
    ``None`` is a gap or pause tick (send ordinary audio, e.g. silence). For each digit
    of ``duration_ms`` (n frames):

    - packets 1..n-1 carry growing durations 160, 320, ... (RFC 4733 §2.5.1.3 updates),
      the first with ``start`` set (marker bit);
    - the end packet (E bit, duration n×160) is sent three times on successive ticks
      (RFC 4733 §2.5.1.4: "a total of three times at the interval used for updates"),
      so a lost end packet does not lose the digit's duration;
    - ``gap_ms`` of audio separates digits; a ``w`` in the string is ``pause_ms`` of audio.
    """

    __slots__ = ("_index", "_ticks", "digits")

    def __init__(
        self,
        digits: str,
        duration_ms: int = 100,
        *,
        volume: int = 10,
        gap_ms: int = 50,
        pause_ms: int = 500,
        frame_ms: int = 20,
        clock_rate: int = 8000,
    ) -> None:
        self.digits = validate_digits(digits)
        if not 0 <= volume <= 63:
            raise ValueError("volume must be 0..63 (-dBm0)")
        if duration_ms <= 0 or gap_ms < 0 or pause_ms < 0 or frame_ms <= 0:
            raise ValueError("durations must be positive")
        frame_units = clock_rate * frame_ms // 1000
        tone_frames = max(1, math.ceil(duration_ms / frame_ms))
        if tone_frames * frame_units > _MAX_DURATION:
            # RFC 4733 §2.5.2.3 long-duration segments are not implemented.
            raise ValueError(f"DTMF tone of {duration_ms} ms does not fit one event")
        gap_ticks = math.ceil(gap_ms / frame_ms)
        pause_ticks = math.ceil(pause_ms / frame_ms)

        ticks: list[DtmfTick | None] = []
        previous_was_digit = False
        for ch in self.digits:
            if ch in PAUSE_CHARS:
                ticks.extend([None] * pause_ticks)
                previous_was_digit = False
                continue
            if previous_was_digit:
                ticks.extend([None] * gap_ticks)
            event = _EVENT_OF[ch]
            for k in range(1, tone_frames):
                payload = DtmfEvent(event, False, volume, k * frame_units).serialize()
                ticks.append(DtmfTick(payload, start=k == 1))
            end = DtmfEvent(event, True, volume, tone_frames * frame_units).serialize()
            ticks.append(DtmfTick(end, start=tone_frames == 1))
            ticks.append(DtmfTick(end, start=False))
            ticks.append(DtmfTick(end, start=False))
            previous_was_digit = True
        self._ticks: tuple[DtmfTick | None, ...] = tuple(ticks)
        self._index = 0

    def __len__(self) -> int:
        """Total ticks (packets and gaps) the whole string takes."""
        return len(self._ticks)

    @property
    def done(self) -> bool:
        """True once every tick has been handed out."""
        return self._index >= len(self._ticks)

    def __next__(self) -> DtmfTick | None:
        """The next tick: a payload to send in place of audio, or None for an audio tick."""
        if self._index >= len(self._ticks):
            raise StopIteration
        tick = self._ticks[self._index]
        self._index += 1
        return tick


class DtmfReceiver:
    """Turn received telephone-event packets into one ``DtmfDigit`` per event.

    An event is identified by its RTP timestamp (RFC 4733 §2.5.2.1: all packets of one
    event share it). The digit is reported at the first end packet; the two
    retransmissions are ignored. If the end packets are lost, the digit is reported when
    a packet with a new timestamp arrives, or by ``poll(now)`` once no packet for the
    event has arrived for ``timeout`` seconds.
    """

    __slots__ = (
        "_clock_rate",
        "_digit",
        "_duration",
        "_last_seen",
        "_recent",
        "_timestamp",
        "pending",
        "timeout",
    )

    def __init__(self, clock_rate: int = 8000, timeout: float = 0.4) -> None:
        self._clock_rate = clock_rate
        self.timeout = timeout
        self._timestamp: int | None = None
        self._digit = ""
        self._duration = 0
        #: True while an event has started and its digit is not reported yet (a plain
        #: attribute: the media clock checks it for every leg on every tick).
        self.pending = False
        self._last_seen = 0.0
        # Timestamps of finished events: late retransmissions of them are ignored.
        self._recent: deque[int] = deque(maxlen=16)

    def feed(self, packet: RtpPacket, now: float) -> tuple[DtmfDigit, ...]:
        """Take one telephone-event packet; see ``feed_payload``."""
        return self.feed_payload(packet.timestamp, packet.payload, now)

    def feed_payload(self, timestamp: int, payload: bytes, now: float) -> tuple[DtmfDigit, ...]:
        """Take one telephone-event payload with its packet's RTP timestamp.

        Returns the digits completed by this packet: usually none, one at an end
        packet, two when a new event starts while the previous one never saw its end.
        Undecodable payloads and non-DTMF events (e.g. 16, flash) are ignored.
        """
        try:
            event = DtmfEvent.parse(payload)
        except DtmfError:
            return ()
        if event.event >= len(DTMF_DIGITS):
            return ()
        if timestamp == self._timestamp:
            self._last_seen = now
            if event.duration > self._duration:
                self._duration = event.duration
            if event.end and self.pending:
                self.pending = False
                return (self._current(),)
            return ()
        if timestamp in self._recent:
            return ()  # a late packet of an event already reported
        out: tuple[DtmfDigit, ...] = ()
        if self._timestamp is not None:
            if self.pending:
                out = (self._current(),)  # its end packets were lost
            self._recent.append(self._timestamp)
        self._timestamp = timestamp
        self._digit = DTMF_DIGITS[event.event]
        self._duration = event.duration
        self._last_seen = now
        self.pending = not event.end
        if event.end:
            out = (*out, self._current())
        return out

    def poll(self, now: float) -> tuple[DtmfDigit, ...]:
        """Report the current event if it went quiet without an end packet."""
        if self.pending and now - self._last_seen >= self.timeout:
            self.pending = False
            return (self._current(),)
        return ()

    def next_deadline(self) -> float | None:
        """When ``poll`` may next have something to report, or None."""
        return self._last_seen + self.timeout if self.pending else None

    def reset(self) -> None:
        """Forget the event in progress (e.g. the remote SSRC changed)."""
        self._timestamp = None
        self.pending = False
        self._recent.clear()

    def _current(self) -> DtmfDigit:
        return DtmfDigit(
            digit=self._digit,
            duration_ms=self._duration * 1000 // self._clock_rate,
            timestamp=self._timestamp if self._timestamp is not None else 0,
        )
