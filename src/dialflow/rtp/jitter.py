"""A playout (jitter) buffer for 20 ms audio frames, keyed by RTP sequence number.

Sans-I/O and tick-driven: ``insert``/``put`` as packets arrive, ``pop`` once per
20 ms media-clock tick. 16-bit sequence numbers are extended to unbounded integers
once, on the way in (RFC 3550 §A.1), so everything after that is plain integer
arithmetic and wrap-around at 65535 needs no special case.

Playout policy (simple and adaptive):

- After a (re)start the buffer holds the first frame until ``target_depth`` frames of
  span are queued or it has waited ``target_depth`` ticks, so up to ``target_depth``
  × 20 ms of jitter is absorbed and a short talkspurt still plays.
- A frame missing at its turn while later frames exist is *lost*: ``pop`` returns None
  and the caller conceals it (silence).
- If the buffer runs dry (underrun: sender silent, DTX, or a late burst) it does not
  advance and waits for ``target_depth`` frames again; depth therefore grows after
  underruns, which is the adaptation to the network.
- If the queued span exceeds ``max_depth``, or stays above ``target_depth + 1`` for
  ``shrink_after`` ticks, the oldest frames are dropped to bring latency back down.
- A packet behind the playout point is *late* (or a *duplicate*, if that frame was
  already played); a packet already queued is a *duplicate*. Both are dropped.
- An SSRC change, a sequence jump over ``max_jump`` frames or a timestamp that runs
  backwards against the sequence numbers means the sender restarted: resynchronise.
  A forward timestamp jump with contiguous sequence numbers is silence suppression
  (RFC 3551 §4.1) and is *not* a resync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from dialflow.rtp.packet import RtpPacket

__all__ = ["JitterBuffer", "JitterStats"]

_HISTORY_MASK: Final = (1 << 64) - 1
_NO_AUDIO: Final = b""


@dataclass(slots=True)
class JitterStats:
    """Counters since the buffer was created (resyncs do not reset them)."""

    received: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    dropped: int = 0
    underruns: int = 0
    resyncs: int = 0


class JitterBuffer:
    """Reorders packets and hands out one frame payload per tick (None = conceal)."""

    __slots__ = (
        "_buf",
        "_fresh",
        "_highest",
        "_highest_ts",
        "_history",
        "_next",
        "_ssrc",
        "_surplus_ticks",
        "_wait_ticks",
        "_waiting",
        "frame_samples",
        "max_depth",
        "max_jump",
        "shrink_after",
        "stats",
        "target_depth",
    )

    def __init__(
        self,
        target_depth: int = 2,
        max_depth: int = 10,
        *,
        frame_samples: int = 160,
        max_jump: int = 50,
        shrink_after: int = 100,
    ) -> None:
        if not 1 <= target_depth < max_depth:
            raise ValueError("need 1 <= target_depth < max_depth")
        self.target_depth = target_depth
        self.max_depth = max_depth
        self.frame_samples = frame_samples
        self.max_jump = max_jump
        self.shrink_after = shrink_after
        self.stats = JitterStats()
        self._buf: dict[int, bytes] = {}
        self._ssrc: int | None = None
        self._highest = 0
        self._highest_ts = 0
        self._next: int | None = None
        self._waiting = True
        self._wait_ticks = 0
        self._fresh = True
        self._history = 0  # bit i set: frame (next - 1 - i) was played
        self._surplus_ticks = 0

    @property
    def depth(self) -> int:
        """Frames of span queued ahead of the playout point (gaps included)."""
        if self._next is None:
            return 0
        return max(0, self._highest - self._next + 1)

    def put(self, packet: RtpPacket) -> bool:
        """Queue a parsed packet; see ``insert``."""
        return self.insert(packet.sequence_number, packet.timestamp, packet.ssrc, packet.payload)

    def insert(self, seq: int, timestamp: int, ssrc: int, payload: bytes | None) -> bool:
        """Queue one packet's payload; False if it was dropped (late or duplicate).

        ``payload=None`` marks a sequence number that carries no audio (e.g. an RFC 4733
        telephone-event packet sharing the sequence space) so it is not counted lost.
        """
        highest = self._highest
        if (
            seq == (highest + 1) & 0xFFFF
            and ssrc == self._ssrc
            and timestamp == (self._highest_ts + self.frame_samples) & 0xFFFFFFFF
            and self._next is not None
            and self.max_jump > 0
        ):
            # Steady state, ~every packet (50 per second per call): the next packet in
            # order on the expected timestamp. The general path below does the same for
            # it (no resync: d = 1, zero drift; ext = highest + 1 >= next and is not
            # queued yet) in many more steps.
            highest += 1
            self._highest = highest
            self._highest_ts = timestamp
            self._buf[highest] = payload if payload else _NO_AUDIO
            self.stats.received += 1
            return True
        if ssrc != self._ssrc or self._next is None:
            if self._ssrc is not None:
                self.stats.resyncs += 1
            self._start(seq, timestamp, ssrc)
            return self._store(self._highest, payload)

        # RFC 3550 §A.1: extend against the highest sequence number seen.
        d = (seq - self._highest) & 0xFFFF
        if d >= 0x8000:
            d -= 0x10000
        ext = self._highest + d

        if d > self.max_jump or ext < self._next - self.max_jump:
            self.stats.resyncs += 1
            self._start(seq, timestamp, ssrc)
            return self._store(self._highest, payload)
        if d > 0:
            # Signed 32-bit distance between the timestamp and the one the sequence
            # numbers predict: negative means the sender's timeline went backwards.
            drift = (timestamp - self._highest_ts - d * self.frame_samples) & 0xFFFFFFFF
            if drift >= 0x80000000 and drift - 0x100000000 < -self.max_jump * self.frame_samples:
                self.stats.resyncs += 1
                self._start(seq, timestamp, ssrc)
                return self._store(self._highest, payload)

        if ext < self._next:
            if self._fresh and ext > self._next - self.max_depth:
                # Reordered before playout began: move the start back.
                self._next = ext
                return self._store(ext, payload)
            back = self._next - 1 - ext
            if back < 64 and (self._history >> back) & 1:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return False
        if ext in self._buf:
            self.stats.duplicates += 1
            return False
        if ext > self._highest:
            self._highest = ext
            self._highest_ts = timestamp
        return self._store(ext, payload)

    def pop(self) -> bytes | None:
        """The next frame's payload for this tick, or None (waiting, lost, or no audio)."""
        nxt = self._next
        if nxt is None:
            return None
        span = self._highest - nxt + 1
        if 0 < span <= self.target_depth + 1 and not self._waiting:
            # Steady state, every tick of a flowing call: playing, within the target
            # depth (nothing to skip or wait for).
            self._surplus_ticks = 0
            return self._play(nxt)
        if self._waiting:
            if span <= 0:
                return None
            # Prefill: hold the first frame until target_depth frames of span are queued
            # or it has waited target_depth ticks (a short talkspurt must still play).
            self._wait_ticks += 1
            if span < self.target_depth and self._wait_ticks < self.target_depth:
                return None
            self._waiting = False
            self._fresh = False
        elif span <= 0:
            # Underrun: stay on this frame and rebuild target_depth before playing again.
            self._waiting = True
            self._wait_ticks = 0
            self.stats.underruns += 1
            return None
        if span > self.max_depth:
            nxt = self._skip(nxt, span - self.target_depth)
        elif span > self.target_depth + 1:
            self._surplus_ticks += 1
            if self._surplus_ticks >= self.shrink_after:
                nxt = self._skip(nxt, 1)
        else:
            self._surplus_ticks = 0
        return self._play(nxt)

    def _play(self, nxt: int) -> bytes | None:
        """Take frame ``nxt`` (None if it never came) and move on to the next one."""
        self._next = nxt + 1
        payload = self._buf.pop(nxt, None)
        if payload is None:
            self.stats.lost += 1
            self._history = (self._history << 1) & _HISTORY_MASK
            return None
        self._history = ((self._history << 1) | 1) & _HISTORY_MASK
        self.stats.played += 1
        return payload or None

    def reset(self) -> None:
        """Drop everything; the next packet starts a new stream."""
        self._buf.clear()
        self._ssrc = None
        self._next = None

    def _start(self, seq: int, timestamp: int, ssrc: int) -> None:
        self._buf.clear()
        self._ssrc = ssrc
        # Start the extended space at 2^16 so reordered earlier packets stay positive.
        self._highest = 0x10000 + seq
        self._highest_ts = timestamp
        self._next = self._highest
        self._waiting = True
        self._wait_ticks = 0
        self._fresh = True
        self._history = 0
        self._surplus_ticks = 0

    def _store(self, ext: int, payload: bytes | None) -> bool:
        self._buf[ext] = payload if payload else _NO_AUDIO
        self.stats.received += 1
        return True

    def _skip(self, nxt: int, frames: int) -> int:
        """Drop the ``frames`` oldest frames of span to cut latency; the new playout point."""
        for ext in range(nxt, nxt + frames):
            if self._buf.pop(ext, None) is not None:
                self.stats.dropped += 1
                self._history = ((self._history << 1) | 1) & _HISTORY_MASK
            else:
                self.stats.lost += 1
                self._history = (self._history << 1) & _HISTORY_MASK
        self._surplus_ticks = 0
        return nxt + frames
