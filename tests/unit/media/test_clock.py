"""MediaClock: batched encode/decode per slot, slot balance, failure isolation, lifecycle."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest

from dialflow.media.clock import MediaClock, frames_to_skip
from dialflow.rtp import g711
from dialflow.rtp.g711 import Codec


class FakeLeg:
    """Records what the clock does with it."""

    def __init__(self, codec: Codec, value: int | None, *, receive: bytes | None = None) -> None:
        self._codec = codec
        self.value = value
        self.receive = receive
        self.sent: list[bytes] = []
        self.delivered: list[tuple[np.ndarray, float]] = []
        self.levels: list[float] = []
        self.skipped = 0
        self.failed: BaseException | None = None
        self.produce_calls = 0
        self.stall: float = 0.0

    @property
    def codec(self) -> Codec:
        return self._codec

    clock_fd = -1  # no socket: the clock reads nothing for it

    def clock_read(self) -> None:
        raise AssertionError("never polled")

    def clock_produce(self) -> np.ndarray | None:
        self.produce_calls += 1
        if self.stall:
            time.sleep(self.stall)  # simulate a blocked event loop, once
            self.stall = 0.0
        if self.value is None:
            return None  # the leg sent something itself (silence, DTMF)
        return np.full(160, self.value, dtype=np.int16)

    def clock_send(self, packet: memoryview) -> None:
        assert len(packet) == 12 + 160  # header room, then the payload
        self.sent.append(bytes(packet[12:]))

    def clock_receive(self, now: float) -> bytes | None:
        return self.receive

    def clock_deliver(self, frame: np.ndarray, t: float, level: float) -> None:
        self.delivered.append((frame, t))
        self.levels.append(level)

    def clock_skip(self, frames: int) -> None:
        self.skipped += frames

    def clock_failed(self, exc: BaseException) -> None:
        self.failed = exc


class BrokenLeg(FakeLeg):
    def clock_produce(self) -> np.ndarray | None:
        raise RuntimeError("boom")


def test_frames_to_skip_policy() -> None:
    assert frames_to_skip(0.0, 0.02, 3) == 0
    assert frames_to_skip(0.059, 0.02, 3) == 0  # catch up within 3 frames
    assert frames_to_skip(0.061, 0.02, 3) == 3
    assert frames_to_skip(1.0, 0.02, 3) == 50
    assert frames_to_skip(0.03, 0.02, 0) == 1


async def test_slots_are_balanced_and_task_stops_when_idle() -> None:
    clock = MediaClock(subticks=4)
    legs = [FakeLeg(Codec.PCMU, 0) for _ in range(10)]
    for leg in legs:
        clock.register(leg)
    assert sorted(len(s) for s in clock._slots) == [2, 2, 3, 3]
    assert clock.running and len(clock) == 10
    clock.register(legs[0])  # idempotent
    assert len(clock) == 10
    for leg in legs:
        clock.unregister(leg)
    assert not clock.running and len(clock) == 0
    await asyncio.sleep(0)  # the cancelled task finishes
    assert all(not s for s in clock._slots)


def test_run_slot_encodes_each_codec_once_and_sends_exact_bytes() -> None:
    clock = MediaClock()
    legs = [
        FakeLeg(Codec.PCMU, 1000),
        FakeLeg(Codec.PCMA, 1000),
        FakeLeg(Codec.PCMU, -2000),
        FakeLeg(Codec.PCMU, None),  # handled its own tick
    ]
    clock.run_slot(list(legs), 12.5)
    for leg in legs[:3]:
        assert leg.value is not None
        frame = np.full(160, leg.value, dtype=np.int16)
        assert leg.sent == [g711.encode(frame, leg.codec).tobytes()]
    assert legs[3].sent == []
    assert legs[0].sent[0] != legs[1].sent[0]  # µ-law and A-law differ


def test_run_slot_batch_decodes_and_delivers_copies() -> None:
    clock = MediaClock()
    codes = bytes(range(160))
    u = FakeLeg(Codec.PCMU, None, receive=codes)
    a = FakeLeg(Codec.PCMA, None, receive=codes)
    quiet = FakeLeg(Codec.PCMU, None, receive=None)
    clock.run_slot([u, a, quiet], 3.0)
    (fu, tu), (fa, ta) = u.delivered[0], a.delivered[0]
    assert tu == ta == 3.0
    assert fu.tobytes() == g711.decode(codes, Codec.PCMU).tobytes()
    assert fa.tobytes() == g711.decode(codes, Codec.PCMA).tobytes()
    assert fu.base is None or fu.base.shape == (160,)  # its own copy, not a batch view
    assert quiet.delivered == []
    for leg, frame in ((u, fu), (a, fa)):  # each frame's RMS level, from the batch
        wide = frame.astype(np.float64)
        assert leg.levels == [pytest.approx(float(np.sqrt(np.mean(wide**2))), rel=1e-12)]
    assert u.levels[0] != a.levels[0]


async def test_failing_leg_is_removed_and_others_keep_going() -> None:
    clock = MediaClock()
    good, bad = FakeLeg(Codec.PCMU, 5), BrokenLeg(Codec.PCMU, 5)
    clock.register(good)
    clock.register(bad)
    slot_good = clock._slots[clock._slot_of[good]]
    clock.run_slot([bad, good], 0.0)
    assert isinstance(bad.failed, RuntimeError)
    assert bad not in clock and good in clock
    assert len(good.sent) == 1 and clock.stats.failures == 1
    assert good in slot_good
    await clock.stop()


async def test_stop_refuses_new_legs_until_start() -> None:
    clock = MediaClock()
    leg = FakeLeg(Codec.PCMU, 0)
    clock.register(leg)
    await clock.stop()
    assert not clock.running and len(clock) == 0
    with pytest.raises(RuntimeError):
        clock.register(leg)
    clock.start()
    clock.register(leg)
    assert clock.running
    await clock.stop()


async def test_ticks_paced_then_stall_skips_frames() -> None:
    """Real time (~0.4 s): 20 ms pacing, then a 150 ms stall is skipped, not replayed."""
    loop = asyncio.get_running_loop()
    clock = MediaClock(subticks=1, max_late_frames=3)
    leg = FakeLeg(Codec.PCMU, 1)
    start = loop.time()
    clock.register(leg)
    await asyncio.sleep(0.1)
    # Paced from the registration time, whatever this coroutine's own wake-up delay.
    assert abs(leg.produce_calls - (loop.time() - start) / 0.02) <= 2
    leg.stall = 0.15  # the next tick blocks the whole loop for 150 ms
    await asyncio.sleep(0.05)
    await asyncio.sleep(0.03)
    assert leg.stall == 0.0
    # 150 ms late > 60 ms: the whole frames missed are skipped (about 7), not sent late.
    assert leg.skipped >= 6 and clock.stats.skipped_frames == leg.skipped
    sent_frames = leg.produce_calls + leg.skipped
    assert abs(sent_frames - (loop.time() - start) / 0.02) <= 2
    await clock.stop()


class SocketLeg(FakeLeg):
    """A fake leg with a real UDP socket: the clock polls it and calls clock_read."""

    def __init__(self, *, broken: bool = False) -> None:
        super().__init__(Codec.PCMU, None)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.broken = broken
        self.read: list[bytes] = []

    @property
    def clock_fd(self) -> int:  # type: ignore[override]
        return self.sock.fileno()

    def clock_read(self) -> None:
        if self.broken:
            raise RuntimeError("bad datagram")
        self.read.append(self.sock.recv(2048))


async def test_read_failure_removes_only_that_leg_and_reads_stop_when_idle() -> None:
    clock = MediaClock(subticks=1)
    good, bad = SocketLeg(), SocketLeg(broken=True)
    clock.register(good)
    clock.register(bad)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for leg in (bad, good, good):
            sender.sendto(b"x", leg.sock.getsockname())
        clock.run_slot(clock._slots[0], 0.0, clock.poller)
        assert isinstance(bad.failed, RuntimeError) and bad not in clock
        assert good.read == [b"x", b"x"]  # every queued datagram, in one sub-tick
        assert clock.poller is not None
        clock.unregister(good)
        assert clock.poller is None  # the epoll set is closed with the last leg
    finally:
        sender.close()
        good.sock.close()
        bad.sock.close()
        await clock.stop()
