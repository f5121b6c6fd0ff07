"""The media clock: one asyncio task paces every leg's RTP in 20 ms frames.

Frame n is due at ``t0 + n × 20 ms`` on the loop's monotonic clock; each wake-up
computes its deadline from ``t0`` rather than sleeping "20 ms more", so sleep errors
never accumulate (the pacing idea of aiortc's ``mediastreams.py``, for all calls at
once).

Sub-ticks. Sending costs ~7 µs per call, so 1,000 calls sent in one burst take ~7 ms
and the last ones in the burst go out late whenever the burst starts late
(PERFORMANCE-NOTES). Each leg is therefore assigned to one of ``subticks`` slots
(the least loaded, at registration) and slot s of frame n is due at
``t0 + n × 20 ms + s × 20 ms / subticks``. Every leg is serviced at the same offset
in every frame, so its send interval stays even, the bursts are a quarter of the
size, and received datagrams get read between them. Empty slots cost nothing.

Per sub-tick, for the legs of that slot: collect the next 160-sample frame of every
leg that needs encoding, encode all of them in ONE numpy call per codec, send each
leg's packet; then read what the legs' sockets received; then pop each leg's jitter
buffer, decode all payloads (and compute their RMS levels) in ONE call per codec and
deliver the frames to the legs' subscribers.

Receiving in the tick. The legs' sockets are not registered with the event loop:
the clock keeps one epoll set of every leg's socket, and every sub-tick asks it which
are readable (one syscall for all of them, no exception per idle leg), lets each of
those legs read ONE datagram, and asks again until nothing is left (bounded by
``max_read_rounds``, so a flooding peer cannot hold the clock; the kernel drops what
its socket buffer cannot hold). This replaces one loop wake-up and callback per
datagram (the largest single cost at 1,000 calls, docs/performance.md). Every leg's
socket is read every sub-tick, not only in its own slot: the reading costs the same
(each datagram is read once, one poll per sub-tick either way) and a packet waits at
most one sub-tick (5 ms) before it reaches the jitter buffer or, for DTMF, the
flow, which then answers at the leg's next frame as before. Sending happens first
in the sub-tick so that the send time, which the far end sees as jitter, does not
depend on how much was received.

Late wake-ups (the loop stalled: GC, a blocking callback, CPU starvation):

- up to ``max_late_frames`` frames late (default 3 = 60 ms): *catch up*. The missed
  slots are run back to back without sleeping. The peer's jitter buffer absorbs a
  60 ms burst and no audio is lost.
- later than that: *skip*. Every leg lets the missed frames pass without sending
  (``RtpSender.skip`` advances the RTP timestamp and sets the marker, so the peer
  sees a silence period and keeps its timeline) and playback resumes where it was,
  without losing words. Sending seconds of backlog in a burst would overflow the
  peer's jitter buffer and add that much latency for the rest of the call.

Lifecycle. The task starts when the first leg registers and is cancelled when the
last leg unregisters, so an idle process has no media task and nothing leaks;
``stop()`` stops it at once and refuses new legs (shutdown). Registering again starts a new task
with a new ``t0``.
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from dialflow.rtp.g711 import FRAME_SAMPLES, Codec, decode, encode
from dialflow.rtp.packet import HEADER_SIZE

__all__ = ["ClockLeg", "ClockStats", "MediaClock", "frames_to_skip"]

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]

_PACKET_SIZE = HEADER_SIZE + FRAME_SAMPLES  # one G.711 frame with a plain RTP header


class ClockLeg(Protocol):
    """What the clock needs from a leg (implemented by ``MediaLeg``).

    All methods are called on the clock's task. Once per frame, in the leg's sub-tick:
    ``clock_produce`` (then ``clock_send`` if it returned a frame), ``clock_receive``
    (then ``clock_deliver`` if it returned a payload). ``clock_read`` once per datagram
    waiting on ``clock_fd``, in whichever sub-tick finds it (before the pops).
    """

    @property
    def clock_fd(self) -> int:
        """The socket the clock polls for this leg (read at registration; -1: none)."""
        ...

    def clock_read(self) -> None:
        """Read and process one datagram from ``clock_fd`` (called when it is readable)."""
        ...

    @property
    def codec(self) -> Codec:
        """The negotiated G.711 law."""
        ...

    def clock_produce(self) -> Samples | None:
        """This frame's 160 int16 samples to encode, or None if the leg sent (or skipped) itself."""
        ...

    def clock_send(self, packet: memoryview) -> None:
        """Send the frame returned by ``clock_produce``, encoded in ``packet``.

        The encoded payload is in place after ``HEADER_SIZE`` bytes left for the RTP
        header, which the leg writes before sending. Valid only during the call.
        """
        ...

    def clock_receive(self, now: float) -> bytes | None:
        """Pop this frame's received payload; return it if it should be decoded and delivered."""
        ...

    def clock_deliver(self, frame: Samples, t: float, level: float) -> None:
        """Hand the decoded frame (RMS ``level`` in sample units) to the leg's subscribers."""
        ...

    def clock_skip(self, frames: int) -> None:
        """Let ``frames`` frames pass without sending (clock stall, see module docs)."""
        ...

    def clock_failed(self, exc: BaseException) -> None:
        """The leg raised during a tick and was unregistered."""
        ...


@dataclass(slots=True)
class ClockStats:
    """What the clock has done since it was created."""

    frames: int = 0  # frames ticked (each covers every slot)
    subticks: int = 0  # slot runs with at least one leg
    late_subticks: int = 0  # slot runs that started more than one sub-tick late
    skipped_frames: int = 0  # frames skipped after stalls longer than max_late_frames
    max_lateness: float = 0.0  # seconds
    read_rounds_capped: int = 0  # slot reads stopped by max_read_rounds (a flood)
    busy: float = 0.0  # seconds spent working inside slot runs (perf_counter)
    failures: int = 0  # legs unregistered because they raised


def frames_to_skip(lateness: float, period: float, max_late_frames: int) -> int:
    """How many whole frames to skip when a slot runs ``lateness`` seconds late.

    0 means catch up (run the late work now, back to back): the delay is within
    ``max_late_frames`` periods. Otherwise every whole period of lateness is skipped,
    leaving less than one period to catch up.
    """
    if lateness <= max_late_frames * period:
        return 0
    return int(lateness / period)


class MediaClock:
    """One 20 ms ticker for every media leg of the process."""

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        subticks: int = 4,
        max_late_frames: int = 3,
        max_read_rounds: int = 32,
    ) -> None:
        if subticks < 1 or frame_ms < 1 or max_late_frames < 0 or max_read_rounds < 1:
            raise ValueError("invalid clock parameters")
        self.frame_ms = frame_ms
        self.subticks = subticks
        self.max_late_frames = max_late_frames
        self.max_read_rounds = max_read_rounds
        self.stats = ClockStats()
        self._period = frame_ms / 1000.0
        self._slots: list[list[ClockLeg]] = [[] for _ in range(subticks)]
        self._slot_of: dict[ClockLeg, int] = {}
        # The legs' sockets, polled every sub-tick (created with the first one).
        self._poller: _Poller | None = None
        self._fd_of: dict[ClockLeg, int] = {}
        self._leg_of_fd: dict[int, ClockLeg] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, leg: object) -> bool:
        return leg in self._slot_of

    @property
    def running(self) -> bool:
        """True while the clock task exists (i.e. at least one leg is registered)."""
        return self._task is not None

    def register(self, leg: ClockLeg) -> None:
        """Start ticking ``leg`` from the next free slot; starts the task if idle.

        Must be called from within the running event loop.
        """
        if self._stopped:
            raise RuntimeError("media clock is stopped")
        if leg in self._slot_of:
            return
        slot = min(range(self.subticks), key=lambda s: len(self._slots[s]))
        fd = leg.clock_fd
        if fd >= 0:
            if self._poller is None:
                self._poller = _Poller()
            self._poller.register(fd)
            self._fd_of[leg] = fd
            self._leg_of_fd[fd] = leg
        self._slots[slot].append(leg)
        self._slot_of[leg] = slot
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    def unregister(self, leg: ClockLeg) -> None:
        """Stop ticking ``leg`` (no-op if not registered). Safe from inside a tick."""
        slot = self._slot_of.pop(leg, None)
        if slot is not None:
            self._slots[slot].remove(leg)
            fd = self._fd_of.pop(leg, -1)
            # The fd may have been closed and reused by a leg registered since: only
            # the leg that owns the registration removes it.
            if fd >= 0 and self._leg_of_fd.get(fd) is leg:
                del self._leg_of_fd[fd]
                if self._poller is not None:
                    self._poller.unregister(fd)
        if not self._slot_of:
            self._close_poller()
        if not self._slot_of and self._task is not None:
            # Idle: stop now rather than at the next wake-up, so nothing outlives the
            # last leg. (If called from the task itself, it ends at its next await.)
            self._task.cancel()
            self._task = None

    def start(self) -> None:
        """Accept legs again after ``stop()``.

        Optional for a new clock: the task itself starts with the first registered leg.
        """
        self._stopped = False

    async def stop(self) -> None:
        """Shutdown: unregister every leg, stop the task now, refuse new legs until ``start()``."""
        self._stopped = True
        self._slot_of.clear()
        for slot in self._slots:
            slot.clear()
        self._close_poller()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            # Swallows the task's own CancelledError; still raises if *we* are cancelled.
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self._period
        sub = period / self.subticks
        stats = self.stats
        t0 = loop.time()
        n = 0
        try:
            while self._slot_of:
                for s, slot in enumerate(self._slots):
                    if not slot:
                        continue
                    due = t0 + n * period + s * sub
                    now = loop.time()
                    # Always yield, even when late: received datagrams, DTMF and the
                    # rest of the program must run between slots or they starve.
                    await asyncio.sleep(due - now if now < due else 0)
                    now = loop.time()
                    late = now - due
                    skipped = frames_to_skip(late, period, self.max_late_frames)
                    if skipped:
                        self._skip_all(skipped)
                        n += skipped
                        due += skipped * period
                        late = now - due
                    if late > sub:
                        stats.late_subticks += 1
                    if late > stats.max_lateness:
                        stats.max_lateness = late
                    self.run_slot(slot, due, self._poller)
                n += 1
                stats.frames += 1
        except Exception:
            log.exception("media clock failed; it restarts with the next registered leg")
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def run_slot(self, slot: list[ClockLeg], t: float, poller: _Poller | None = None) -> None:
        """Do one sub-tick's work for the legs of ``slot`` (``t``: the frame's due time).

        ``poller``: the sockets to read (``poller``); None reads nothing.
        Public so tests can drive the clock without sleeping.
        """
        started = time.perf_counter()
        legs = tuple(slot)  # a leg may unregister during the tick
        pcmu = Codec.PCMU
        # Two codecs only: plain lists beat a dict keyed by an enum (Python-level hash).
        u_frames: list[Samples] = []
        u_legs: list[ClockLeg] = []
        a_frames: list[Samples] = []
        a_legs: list[ClockLeg] = []
        for leg in legs:
            try:
                frame = leg.clock_produce()
            except Exception as exc:
                self._fail(leg, exc)
                continue
            if frame is not None:
                if leg.codec is pcmu:
                    u_frames.append(frame)
                    u_legs.append(leg)
                else:
                    a_frames.append(frame)
                    a_legs.append(leg)
        if u_frames:
            self._encode_and_send(Codec.PCMU, u_frames, u_legs)
        if a_frames:
            self._encode_and_send(Codec.PCMA, a_frames, a_legs)
        if poller is not None:
            self._read(poller)

        u_payloads: list[bytes] = []
        a_payloads: list[bytes] = []
        u_legs = []
        a_legs = []
        for leg in legs:
            try:
                payload = leg.clock_receive(t)
            except Exception as exc:
                self._fail(leg, exc)
                continue
            if payload is not None:
                if leg.codec is pcmu:
                    u_payloads.append(payload)
                    u_legs.append(leg)
                else:
                    a_payloads.append(payload)
                    a_legs.append(leg)
        if u_payloads:
            self._decode_and_deliver(Codec.PCMU, u_payloads, u_legs, t)
        if a_payloads:
            self._decode_and_deliver(Codec.PCMA, a_payloads, a_legs, t)
        self.stats.subticks += 1
        self.stats.busy += time.perf_counter() - started

    def _encode_and_send(self, codec: Codec, frames: list[Samples], legs: list[ClockLeg]) -> None:
        # ONE table lookup for the whole batch, written straight into one buffer of
        # whole packets: each leg then writes its 12-byte header in front of its payload
        # and sends a view, instead of slicing a payload, packing a header and joining
        # the two (three allocations per packet). The frames are joined flat: every
        # one is 160 samples (``clock_produce``), and ``np.stack`` spends Python-level
        # work per frame on checking that again.
        n = len(frames)
        packets = np.empty((n, _PACKET_SIZE), dtype=np.uint8)
        packets[:, HEADER_SIZE:] = encode(np.concatenate(frames), codec).reshape(n, FRAME_SAMPLES)
        view = packets.reshape(-1).data  # a flat memoryview of the batch
        offset = 0
        for leg in legs:
            try:
                leg.clock_send(view[offset : offset + _PACKET_SIZE])
            except Exception as exc:
                self._fail(leg, exc)
            offset += _PACKET_SIZE

    def _decode_and_deliver(
        self, codec: Codec, payloads: list[bytes], legs: list[ClockLeg], t: float
    ) -> None:
        codes = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(-1, FRAME_SAMPLES)
        pcm = decode(codes, codec)
        # Every frame's RMS level in one call: barge-in detection needs the level of every
        # received frame of every call, and numpy per frame costs ~1 µs of call overhead.
        wide = pcm.astype(np.float64)
        levels: list[float] = np.sqrt(np.einsum("ij,ij->i", wide, wide) / FRAME_SAMPLES).tolist()
        for i, leg in enumerate(legs):
            try:
                # A copy per leg: a subscriber that keeps its frame must not pin the batch.
                leg.clock_deliver(pcm[i].copy(), t, levels[i])
            except Exception as exc:
                self._fail(leg, exc)

    @property
    def poller(self) -> _Poller | None:
        """The registered legs' sockets (None while no leg with a socket is registered)."""
        return self._poller

    def _read(self, poller: _Poller) -> None:
        leg_of_fd = self._leg_of_fd
        ready_now = poller.ready
        for _ in range(self.max_read_rounds):
            ready = ready_now()
            if not ready:
                return
            for fd, _events in ready:
                leg = leg_of_fd.get(fd)
                if leg is None:
                    continue  # unregistered by an earlier leg's failure this round
                try:
                    leg.clock_read()
                except Exception as exc:
                    self._fail(leg, exc)
        self.stats.read_rounds_capped += 1

    def _close_poller(self) -> None:
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        self._fd_of.clear()
        self._leg_of_fd.clear()

    def _skip_all(self, frames: int) -> None:
        self.stats.skipped_frames += frames
        for leg in tuple(self._slot_of):
            try:
                leg.clock_skip(frames)
            except Exception as exc:
                self._fail(leg, exc)

    def _fail(self, leg: ClockLeg, exc: BaseException) -> None:
        # Bad state in one leg must not stop every other call's audio.
        self.stats.failures += 1
        self.unregister(leg)
        log.error("media leg %r failed during a tick and was removed: %r", leg, exc)
        try:
            leg.clock_failed(exc)
        except Exception:
            log.exception("media leg %r failure handler raised", leg)


class _Poller:
    """Which of the legs' sockets are readable: epoll on Linux, poll(2) elsewhere.

    Level-triggered: a socket with several queued datagrams stays ready, so asking
    again after reading one from each ready socket finds the rest.
    """

    __slots__ = ("_epoll", "_poll")

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._poll = select.poll() if self._epoll is None else None

    def register(self, fd: int) -> None:
        if self._epoll is not None:
            try:
                self._epoll.register(fd, select.EPOLLIN)
            except FileExistsError:
                self._epoll.modify(fd, select.EPOLLIN)
        else:
            assert self._poll is not None
            self._poll.register(fd, select.POLLIN)

    def unregister(self, fd: int) -> None:
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                assert self._poll is not None
                self._poll.unregister(fd)
        except (OSError, KeyError):
            pass  # already closed (the kernel dropped it from the set)

    def ready(self) -> list[tuple[int, int]]:
        """(fd, events) of the readable sockets now; never waits."""
        if self._epoll is not None:
            return self._epoll.poll(0)
        assert self._poll is not None
        return self._poll.poll(0)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
