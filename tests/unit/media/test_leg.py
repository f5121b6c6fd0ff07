"""MediaLeg over real UDP on 127.0.0.1: two legs, one clock, one event loop.

This file sleeps for real (about 2 s in total): it is the loopback check that the
clock, sockets, codecs, jitter buffer and DTMF work together.
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from dialflow.media.clock import MediaClock
from dialflow.media.leg import LegState, MediaLeg, PlaybackState
from dialflow.media.sources import RawPcm, ToneSource
from dialflow.rtp import g711
from dialflow.rtp.dtmf import DtmfDigit, DtmfSender
from dialflow.rtp.g711 import Codec
from dialflow.rtp.packet import RtpPacket
from dialflow.rtp.stream import RtpSender

LOCAL = "127.0.0.1"


async def _pair(
    clock: MediaClock, pt: int = 0, dtmf_pt: int | None = 101
) -> tuple[MediaLeg, MediaLeg]:
    a = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    b = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    assert a.local_port % 2 == 0 and b.local_port % 2 == 0 and a.local_port != b.local_port
    a.start((LOCAL, b.local_port), pt, dtmf_pt)
    b.start((LOCAL, a.local_port), pt, dtmf_pt)
    return a, b


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 8000 / len(samples))


async def test_two_legs_exchange_tone_and_dtmf() -> None:
    clock = MediaClock()
    a, b = await _pair(clock)
    try:
        frames_at_b: list[np.ndarray] = []
        frames_at_a: list[np.ndarray] = []
        b.on_frame(lambda f, t: frames_at_b.append(f))
        a.on_frame(lambda f, t: frames_at_a.append(f))
        digits_at_b: list[DtmfDigit] = []
        b.on_dtmf(digits_at_b.append)
        stream = b.dtmf()

        play_a = a.play(ToneSource(1000, 1000))
        play_b = b.play(ToneSource(1000, 1000))
        sent = await asyncio.wait_for(a.send_dtmf("123#", 100), 5)  # pauses a's tone
        assert sent is True
        assert await asyncio.wait_for(play_a.done(), 5) is PlaybackState.FINISHED
        assert await asyncio.wait_for(play_b.done(), 5) is PlaybackState.FINISHED
        await asyncio.sleep(0.2)  # let the tail through the jitter buffers

        assert [d.digit for d in digits_at_b] == ["1", "2", "3", "#"]
        assert all(d.duration_ms == 100 for d in digits_at_b)
        got = []
        async with stream:
            while len(stream):
                got.append((await stream.__anext__()).digit)
        assert got == ["1", "2", "3", "#"]

        for frames in (frames_at_a, frames_at_b):
            audio = np.concatenate(frames)
            loud = np.array([np.sqrt(np.mean(f.astype(np.float64) ** 2)) > 5000 for f in frames])
            assert loud.sum() >= 45  # ~50 frames of tone (1 s), whatever the jitter-buffer delay
            tone = np.concatenate([f for f, is_loud in zip(frames, loud, strict=True) if is_loud])
            assert abs(_dominant_hz(tone) - 1000) < 10
            rms = np.sqrt(np.mean(tone.astype(np.float64) ** 2))
            assert 0.5 * 32767 / np.sqrt(2) * 0.9 < rms < 0.5 * 32767 / np.sqrt(2) * 1.1
            assert len(audio) % 160 == 0

        sa, sb = a.stats, b.stats
        # a sent tone + DTMF + silence; every packet it sent arrived at b (loopback).
        assert sa.packets_sent >= 50 + 4 * 7
        assert sb.packets_received >= sa.packets_sent - 3  # the last few may be in flight
        assert sb.lost == 0 and sa.lost == 0
        assert sb.remote == (LOCAL, a.local_port)
    finally:
        await a.close()
        await b.close()
    assert a.state is LegState.CLOSED
    assert not clock.running and len(clock) == 0


async def test_silence_when_idle_and_playback_queue() -> None:
    clock = MediaClock()
    a, b = await _pair(clock)
    try:
        frames: list[np.ndarray] = []
        b.on_frame(lambda f, t: frames.append(f))
        await asyncio.sleep(0.2)
        assert a.stats.packets_sent >= 8
        assert max(int(np.abs(f).max()) for f in frames) == 0  # µ-law 0xFF decodes to 0

        first = a.play(RawPcm(np.full(800, 1000, dtype=np.int16)))
        second = a.play(RawPcm(np.full(800, -1000, dtype=np.int16)), interrupt=False)
        assert second.state is PlaybackState.QUEUED
        assert await asyncio.wait_for(first.done(), 2) is PlaybackState.FINISHED
        assert await asyncio.wait_for(second.done(), 2) is PlaybackState.FINISHED

        long = a.play(ToneSource(440, None))
        interrupter = a.play(RawPcm(np.zeros(160, dtype=np.int16)))
        assert await long.done() is PlaybackState.STOPPED
        await asyncio.wait_for(interrupter.done(), 2)
        stopped = a.play(ToneSource(440, None))
        stopped.stop()
        assert await stopped.done() is PlaybackState.STOPPED
    finally:
        await a.close()
        await b.close()


async def test_hold_pauses_sending_and_resume_marks() -> None:
    clock = MediaClock()
    a, b = await _pair(clock)
    try:
        await asyncio.sleep(0.1)
        a.update_remote(on_hold=True)
        await asyncio.sleep(0.04)
        held = a.stats.packets_sent
        await asyncio.sleep(0.2)
        assert a.stats.packets_sent == held
        a.update_remote(on_hold=False)
        await asyncio.sleep(0.1)
        assert a.stats.packets_sent > held
    finally:
        await a.close()
        await b.close()


async def test_inband_dtmf_when_no_telephone_event() -> None:
    clock = MediaClock()
    a, b = await _pair(clock, dtmf_pt=None)
    try:
        frames: list[np.ndarray] = []
        b.on_frame(lambda f, t: frames.append(f))
        assert await asyncio.wait_for(a.send_dtmf("5", 100), 2)
        await asyncio.sleep(0.1)
        audio = np.concatenate(frames).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(audio))
        freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
        top = sorted(freqs[np.argsort(spectrum)[-40:]])
        assert any(abs(f - 770) < 15 for f in top) and any(abs(f - 1336) < 15 for f in top)
    finally:
        await a.close()
        await b.close()


async def test_close_resolves_pending_work_and_frees_port() -> None:
    clock = MediaClock()
    a, b = await _pair(clock)
    playback = a.play(ToneSource(440, None))
    dtmf = a.send_dtmf("1234567890", 200)
    frames = b.frames()
    port = a.local_port
    await a.close()
    await a.close()  # idempotent
    assert await playback.done() is PlaybackState.STOPPED
    assert await dtmf is False
    await b.close()
    async for _ in frames:  # iteration ends once the leg is closed
        pass
    assert frames.closed
    again = await MediaLeg.open(clock, LOCAL, port_range=(port, port + 1))
    assert again.local_port == port
    await again.close()
    with pytest.raises(RuntimeError):
        a.play(ToneSource(440, 100))


async def test_update_remote_codec_and_destination() -> None:
    clock = MediaClock()
    a, b = await _pair(clock)
    c = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    c.start((LOCAL, a.local_port), 8, 101)
    try:
        await b.close()  # the call moved: the old peer stops sending
        await asyncio.sleep(0.05)
        a.update_remote((LOCAL, c.local_port), 8)
        assert a.codec is Codec.PCMA
        got_c: list[np.ndarray] = []
        c.on_frame(lambda f, t: got_c.append(f))
        a.play(ToneSource(1000, 300))
        await asyncio.sleep(0.5)
        assert c.stats.packets_received > 10
        loud = [f for f in got_c if np.abs(f).max() > 10000]
        assert len(loud) >= 10
    finally:
        for leg in (a, b, c):
            await leg.close()


class RawPeer:
    """A plain UDP socket playing the far end."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()

    def drain(self) -> list[RtpPacket]:
        out = []
        while True:
            try:
                data, _ = self.sock.recvfrom(2048)
            except BlockingIOError:
                return out
            out.append(RtpPacket.parse(data))

    def close(self) -> None:
        self.sock.close()


async def test_symmetric_rtp_latches_to_where_the_peer_sends_from() -> None:
    clock = MediaClock()
    leg = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        leg.start((LOCAL, 9), 0, 101)  # the SDP address is wrong (e.g. a private IP behind NAT)
        await asyncio.sleep(0.05)
        assert peer.drain() == []
        sender = RtpSender(0, dtmf_payload_type=101)
        peer.sock.sendto(sender.audio_packet(b"\xff" * 160), (LOCAL, leg.local_port))
        await asyncio.sleep(0.1)
        got = peer.drain()
        assert len(got) >= 3 and leg.remote == peer.addr
        assert all(p.payload_type == 0 and p.payload == b"\xff" * 160 for p in got)
        seqs = [p.sequence_number for p in got]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
        ts = [p.timestamp for p in got]
        assert all((b - a) & 0xFFFFFFFF == 160 for a, b in zip(ts, ts[1:], strict=False))
    finally:
        await leg.close()
        peer.close()


async def test_resume_after_hold_sets_marker_and_keeps_timestamps_running() -> None:
    clock = MediaClock()
    leg = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        leg.start(peer.addr, 0, None)
        await asyncio.sleep(0.1)
        before = peer.drain()
        assert before[0].marker and not any(p.marker for p in before[1:])
        leg.update_remote(on_hold=True)
        await asyncio.sleep(0.1)
        peer.drain()
        t_hold = before[-1].timestamp
        leg.update_remote(on_hold=False)
        await asyncio.sleep(0.06)
        after = peer.drain()
        assert after[0].marker
        gap = (after[0].timestamp - t_hold) & 0xFFFFFFFF
        assert gap >= 160 * 5  # the held frames still advanced the RTP clock
    finally:
        await leg.close()
        peer.close()


async def test_inject_dtmf_and_early_packets() -> None:
    clock = MediaClock()
    leg = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    try:
        digits: list[DtmfDigit] = []
        leg.on_dtmf(digits.append)
        leg.inject_dtmf("7", 250)  # SIP INFO
        assert digits == [DtmfDigit("7", 250, 0)]
        with pytest.raises(RuntimeError):
            leg.send_dtmf("1")  # not started
    finally:
        await leg.close()


async def test_early_packets_are_dropped_at_start_and_later_ones_taken() -> None:
    clock = MediaClock()
    leg = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        sender = RtpSender(0, dtmf_payload_type=101)
        for _ in range(3):  # before start(): payload types unknown yet
            peer.sock.sendto(sender.audio_packet(b"\xff" * 160), (LOCAL, leg.local_port))
        await asyncio.sleep(0.02)
        leg.start(peer.addr, 0, 101)
        assert leg.early_packets == 3
        await asyncio.sleep(0.05)
        assert leg.stats.packets_received == 0
        peer.sock.sendto(sender.audio_packet(b"\xff" * 160), (LOCAL, leg.local_port))
        await asyncio.sleep(0.05)
        assert leg.stats.packets_received == 1
    finally:
        await leg.close()
        peer.close()


def test_loopback_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[int, list[str]]:
        clock = MediaClock()
        a, b = await _pair(clock)
        digits: list[str] = []
        b.on_dtmf(lambda d: digits.append(d.digit))
        a.play(ToneSource(1000, 200))
        await asyncio.wait_for(a.send_dtmf("9*", 40), 3)
        await asyncio.sleep(0.1)
        received = b.stats.packets_received
        await a.close()
        await b.close()
        assert not clock.running
        return received, digits

    received, digits = uvloop.run(scenario())
    assert received >= 12 and digits == ["9", "*"]


def _tick(clock: MediaClock, leg: MediaLeg) -> None:
    """Run the leg's sub-tick now, synchronously (the clock task does not get to run)."""
    slot = next(s for s in clock._slots if leg in s)
    clock.run_slot(slot, 0.0, clock.poller)


async def test_tick_reads_every_queued_packet_and_dtmf_without_the_loop() -> None:
    clock = MediaClock()
    leg = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        leg.start(peer.addr, 0, 101)
        digits: list[str] = []
        leg.on_dtmf(lambda d: digits.append(d.digit))
        sender = RtpSender(0, dtmf_payload_type=101)
        for _ in range(5):  # e.g. a burst after a network stall
            peer.sock.sendto(sender.audio_packet(b"\xff" * 160), (LOCAL, leg.local_port))
        _tick(clock, leg)
        assert leg.stats.packets_received == 5
        sender.start_dtmf(DtmfSender("5", 60))
        while sender.dtmf_active:
            packet = sender.dtmf_packet()
            if packet is not None:
                peer.sock.sendto(packet, (LOCAL, leg.local_port))
        _tick(clock, leg)  # the digit is dispatched inside the tick that read its end
        assert digits == ["5"]
        assert leg.stats.packets_received > 5 and leg.stats.lost == 0
    finally:
        await leg.close()
        peer.close()


async def test_tick_read_rounds_are_bounded() -> None:
    clock = MediaClock(max_read_rounds=2)
    leg = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        leg.start(peer.addr, 0, None)
        sender = RtpSender(0)
        for _ in range(5):
            peer.sock.sendto(sender.audio_packet(b"\xff" * 160), (LOCAL, leg.local_port))
        _tick(clock, leg)
        assert leg.stats.packets_received == 2 and clock.stats.read_rounds_capped == 1
        _tick(clock, leg)
        _tick(clock, leg)
        assert leg.stats.packets_received == 5 and clock.stats.read_rounds_capped == 2
    finally:
        await leg.close()
        peer.close()


async def test_full_send_buffer_drops_packets_and_the_leg_keeps_going() -> None:
    clock = MediaClock()
    leg = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        leg.start(peer.addr, 0, 101)

        def full(data: bytes, addr: object) -> int:
            raise BlockingIOError(11, "Resource temporarily unavailable")

        real = leg._sock_sendto
        leg._sock_sendto = full
        _tick(clock, leg)  # silence (sent by the leg itself)
        leg.play(ToneSource(440, None))
        _tick(clock, leg)  # audio (encoded in batch, sent by clock_send)
        assert leg.send_drops == 2 and leg in clock and leg.state is LegState.ACTIVE
        leg._sock_sendto = real
        _tick(clock, leg)
        assert len(peer.drain()) == 1 and leg.send_drops == 2
    finally:
        await leg.close()
        peer.close()


async def test_closed_leg_leaves_the_poller_and_its_fd_can_be_reused() -> None:
    clock = MediaClock(subticks=1)
    keep = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    gone = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        keep.start(peer.addr, 0, None)
        gone.start(peer.addr, 0, None)
        fd = gone.clock_fd
        await gone.close()
        again = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
        assert again.clock_fd == fd  # the kernel hands out the lowest free fd
        again.start(peer.addr, 0, None)
        sender = RtpSender(0)
        peer.sock.sendto(sender.audio_packet(b"\xff" * 160), (LOCAL, again.local_port))
        _tick(clock, again)
        assert again.stats.packets_received == 1
        await again.close()
        assert len(clock) == 1
    finally:
        await keep.close()
        peer.close()
    assert not clock.running


async def test_frame_rms_is_the_level_of_the_frame_being_delivered() -> None:
    clock = MediaClock()
    leg = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        leg.start(peer.addr, 0, None)
        seen: list[tuple[float, float]] = []

        def check(frame: np.ndarray, t: float) -> None:
            wide = frame.astype(np.float64)
            seen.append((leg.frame_rms, float(np.sqrt(np.mean(wide**2)))))

        leg.on_frame(check)
        sender = RtpSender(0)
        tone = ToneSource(1000, None, amplitude=0.25)
        for _ in range(4):
            samples = tone.read(160)
            assert samples is not None
            payload = g711.encode(samples, Codec.PCMU).tobytes()
            peer.sock.sendto(sender.audio_packet(payload), (LOCAL, leg.local_port))
        for _ in range(5):
            _tick(clock, leg)
        assert len(seen) == 5
        assert all(level == pytest.approx(rms, rel=1e-12) for level, rms in seen)
        assert all(level > 0.25 * 32767 / 2 for level, _ in seen[:4])  # the tone
        assert seen[4] == (0.0, 0.0)  # nothing left: concealed as silence
    finally:
        await leg.close()
        peer.close()


async def test_every_sub_tick_reads_every_legs_socket() -> None:
    clock = MediaClock(subticks=2)
    first = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    second = await MediaLeg.open(clock, LOCAL, port_range=(30000, 31000))
    peer = RawPeer()
    try:
        first.start(peer.addr, 0, None)
        second.start(peer.addr, 0, None)
        assert clock._slot_of[first] != clock._slot_of[second]
        sender = RtpSender(0)
        peer.sock.sendto(sender.audio_packet(b"\xff" * 160), (LOCAL, second.local_port))
        _tick(clock, first)  # the other slot's sub-tick: the packet waits no longer
        assert second.stats.packets_received == 1
    finally:
        await first.close()
        await second.close()
        peer.close()
