"""Benchmark the media clock: N legs on loopback paced by one MediaClock.

The legs send to M plain UDP sink sockets served by another process, which timestamps
every arrival (CLOCK_MONOTONIC is shared by processes on Linux). Per call, the arrival
intervals are compared with 20 ms; the summary gives the p99 of |interval - 20 ms|,
the packets lost (sequence gaps inside the window) and the CPU used by the clock
process (getrusage over the measured window).

    .venv/bin/python bench/media_clock.py --legs 1000 --seconds 10
    .venv/bin/python bench/media_clock.py --legs 1000 --echo        # sinks echo back
    .venv/bin/python bench/media_clock.py --legs 1000 --loop asyncio
    .venv/bin/python bench/media_clock.py --legs 1000 --measure-every 5   # time 200 calls
    taskset -c 0 .venv/bin/python bench/media_clock.py --legs 1000 --pairs  # CPU per frame
    taskset -c 0 .venv/bin/python bench/media_clock.py --legs 1000 --pairs --sync  # clock only

Prints one line:
    media_clock: legs=1000 seconds=10 jitter_p99_ms=… lost=0 cpu_pct=… …

``--pairs`` needs no sink process: the legs talk to each other two by two, so every
leg sends and receives 50 packets/s and listens to every frame (like a flow's
barge-in detection), all in this process. It prints the CPU per leg-frame, the
figure to compare between versions of the media path (pin it to one core):
    media_pairs: legs=1000 seconds=10 cpu_pct=… us_per_leg_frame=… received_ratio=1.000 …
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import resource
import selectors
import socket
import time
from functools import partial
from multiprocessing.connection import Connection

import numpy as np

from dialflow.media.clock import MediaClock
from dialflow.media.leg import MediaLeg
from dialflow.media.sources import ToneSource

HOST = "127.0.0.1"


def sink_main(n_sinks: int, echo: bool, ready: Connection, control: Connection) -> None:
    """Receive (and optionally echo) until told to stop; then report per-packet records."""
    socks = []
    sel = selectors.DefaultSelector()
    for _ in range(n_sinks):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.bind((HOST, 0))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    # Legs that are not measured send here: bound, never read, so the kernel drops
    # their packets after the sender has paid the full send cost.
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    blackhole.bind((HOST, 0))
    ready.send(([s.getsockname()[1] for s in socks], blackhole.getsockname()[1]))
    ports: list[int] = []
    seqs: list[int] = []
    times: list[float] = []
    monotonic = time.monotonic
    while not control.poll():
        for key, _ in sel.select(0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            while True:
                try:
                    data, addr = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                times.append(monotonic())
                ports.append(addr[1])
                seqs.append((data[2] << 8) | data[3])
                if echo:
                    try:
                        sock.sendto(data, addr)
                    except BlockingIOError:
                        pass
    control.recv()  # "stop"
    window = control.recv()
    control.send(analyse(np.array(ports), np.array(seqs), np.array(times), window))


def analyse(
    ports: np.ndarray, seqs: np.ndarray, times: np.ndarray, window: tuple[float, float]
) -> dict[str, float]:
    """Per call: arrival-interval deviation from 20 ms and sequence gaps, in the window."""
    start, end = window
    keep = (times >= start) & (times <= end)
    ports, seqs, times = ports[keep], seqs[keep], times[keep]
    deviations = []
    lost = 0
    packets = 0
    for port in np.unique(ports):
        m = ports == port
        t = times[m]
        s = seqs[m].astype(np.int64)
        # Unwrap 16-bit sequence numbers in arrival order.
        s = s[0] + np.concatenate(([0], np.cumsum(((np.diff(s) + 0x8000) & 0xFFFF) - 0x8000)))
        order = np.argsort(s, kind="stable")
        s, t = s[order], t[order]
        packets += len(s)
        lost += int(s[-1] - s[0] + 1 - len(np.unique(s)))
        consecutive = np.diff(s) == 1
        deviations.append(np.abs(np.diff(t)[consecutive] - 0.020))
    dev = np.concatenate(deviations) if deviations else np.zeros(1)
    return {
        "calls": float(len(np.unique(ports))),
        "packets": float(packets),
        "lost": float(lost),
        "jitter_p50_ms": float(np.percentile(dev, 50) * 1000),
        "jitter_p99_ms": float(np.percentile(dev, 99) * 1000),
        "jitter_max_ms": float(dev.max() * 1000),
    }


async def run_legs(
    args: argparse.Namespace, sink_ports: list[int], blackhole: int
) -> dict[str, float]:
    clock = MediaClock(subticks=args.subticks)
    legs = []
    for i in range(args.legs):
        leg = await MediaLeg.open(clock, HOST, port_range=(20000, 60000))
        measured = i % args.measure_every == 0
        port = sink_ports[(i // args.measure_every) % len(sink_ports)] if measured else blackhole
        leg.start((HOST, port), 0, 101)
        if args.echo:
            leg.on_frame(lambda frame, t: None)  # exercise the batched decode path
        leg.play(ToneSource(400 + i % 1000, None))
        legs.append(leg)
    await asyncio.sleep(args.warmup)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    busy0 = clock.stats.busy
    late0 = clock.stats.late_subticks
    start = time.monotonic()
    await asyncio.sleep(args.seconds)
    end = time.monotonic()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    result = {
        "start": start,
        "end": end,
        "cpu_pct": 100.0 * cpu / (end - start),
        "clock_busy_pct": 100.0 * (clock.stats.busy - busy0) / (end - start),
        "late_subticks": float(clock.stats.late_subticks - late0),
        "max_late_ms": clock.stats.max_lateness * 1000,
        "skipped": float(clock.stats.skipped_frames),
        "received": float(sum(leg.stats.packets_received for leg in legs)),
    }
    for leg in legs:
        await leg.close()
    return result


def _listen(leg: MediaLeg, levels: list[float], frame: np.ndarray, t: float) -> None:
    """What a flow does with every frame: take its level (barge-in detection).

    Trees before the clock computed levels in batch (no ``frame_rms``) pay for it here,
    as their flows did, so the figure compares across versions.
    """
    level = getattr(leg, "frame_rms", None)
    if level is None:
        wide = frame.astype(np.float64)
        level = math.sqrt(float(wide.dot(wide)) / len(wide))
    levels.append(level)


async def run_pairs(args: argparse.Namespace) -> str:
    """Legs in pairs on loopback, one process: CPU per leg-frame, sending and receiving."""
    clock = MediaClock(subticks=args.subticks)
    legs: list[MediaLeg] = []
    levels: list[float] = []
    for i in range(0, args.legs - args.legs % 2, 2):
        a = await MediaLeg.open(clock, HOST, port_range=(20000, 60000))
        b = await MediaLeg.open(clock, HOST, port_range=(20000, 60000))
        a.start((HOST, b.local_port), 0, 101)
        b.start((HOST, a.local_port), 0, 101)
        for leg in (a, b):
            leg.on_frame(partial(_listen, leg, levels))
            leg.play(ToneSource(400 + i % 1000, None))
            legs.append(leg)
    if args.sync:
        return _run_pairs_sync(args, clock, legs, levels)
    await asyncio.sleep(args.warmup)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    received0 = sum(leg.stats.packets_received for leg in legs)
    skipped0 = clock.stats.skipped_frames
    late0 = clock.stats.late_subticks
    start = time.monotonic()
    levels.clear()
    await asyncio.sleep(args.seconds)
    end = time.monotonic()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    received = sum(leg.stats.packets_received for leg in legs) - received0
    user = usage1.ru_utime - usage0.ru_utime
    system = usage1.ru_stime - usage0.ru_stime
    frames = len(legs) * (end - start) / 0.020
    for leg in legs:
        await leg.close()
    return (
        f"media_pairs: legs={len(legs)} seconds={args.seconds:g}"
        f" cpu_pct={100.0 * (user + system) / (end - start):.1f}"
        f" us_per_leg_frame={(user + system) * 1e6 / frames:.2f}"
        f" received_ratio={received / frames:.3f} frames_heard={len(levels)}"
        f" user_s={user:.2f} sys_s={system:.2f}"
        f" skipped={clock.stats.skipped_frames - skipped0}"
        f" late_subticks={clock.stats.late_subticks - late0} loop={args.loop}"
    )


def _run_pairs_sync(
    args: argparse.Namespace, clock: MediaClock, legs: list[MediaLeg], levels: list[float]
) -> str:
    """Drive the clock's sub-ticks back to back without the event loop (``--sync``).

    Only the per-leg work of ``run_slot`` is timed (process CPU time), so the figure is
    far less sensitive to other load on the machine than the paced run: the best of
    ``--repeats`` rounds is the one least disturbed. Never awaits, so the clock's own
    task does not run meanwhile.
    """
    slots = [slot for slot in clock._slots if slot]  # the bench drives the slots itself
    poller = clock.poller
    t = 0.0
    frames_per_round = max(1, int(args.seconds / 0.020 / args.repeats))

    def run(frames: int) -> None:
        nonlocal t
        for _ in range(frames):
            for slot in slots:
                clock.run_slot(slot, t, poller)
            t += 0.020

    run(max(2, int(args.warmup / 0.020)))
    per_frame = []
    for _ in range(args.repeats):
        levels.clear()
        c0 = time.process_time()
        run(frames_per_round)
        per_frame.append((time.process_time() - c0) * 1e6 / (frames_per_round * len(legs)))
    per_frame.sort()
    return (
        f"media_pairs_sync: legs={len(legs)} rounds={args.repeats}x{frames_per_round}"
        f" us_per_leg_frame_min={per_frame[0]:.2f}"
        f" us_per_leg_frame_median={per_frame[len(per_frame) // 2]:.2f}"
        f" frames_heard_last={len(levels)}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--legs", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--sinks", type=int, default=4)
    p.add_argument("--subticks", type=int, default=4)
    p.add_argument("--echo", action="store_true", help="sinks echo packets back to the legs")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument(
        "--measure-every",
        type=int,
        default=1,
        help="time every K-th call only (the others send to a socket nobody reads), so the\n"
        "Python sink does not compete with the clock for CPU; K coprime with --subticks",
    )
    p.add_argument(
        "--pairs",
        action="store_true",
        help="no sink: legs talk to each other two by two; report CPU per leg-frame",
    )
    p.add_argument(
        "--sync",
        action="store_true",
        help="with --pairs: run the sub-ticks back to back, no pacing; CPU per leg-frame\n"
        "of the clock's work only (best and median of --repeats rounds)",
    )
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()

    if args.pairs:
        if args.loop == "uvloop":
            import uvloop

            print(uvloop.run(run_pairs(args)))
        else:
            print(asyncio.run(run_pairs(args)))
        return

    ctx = mp.get_context("spawn")
    ready_r, ready_w = ctx.Pipe(duplex=False)
    control_here, control_there = ctx.Pipe()
    sink = ctx.Process(target=sink_main, args=(args.sinks, args.echo, ready_w, control_there))
    sink.start()
    sink_ports, blackhole = ready_r.recv()

    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(run_legs(args, sink_ports, blackhole))
    else:
        result = asyncio.run(run_legs(args, sink_ports, blackhole))

    control_here.send("stop")
    control_here.send((result["start"], result["end"]))
    sink_stats = control_here.recv()
    sink.join()
    measured = len(range(0, args.legs, args.measure_every))
    expected = measured * args.seconds / 0.020
    print(
        f"media_clock: legs={args.legs} seconds={args.seconds:g}"
        f" jitter_p99_ms={sink_stats['jitter_p99_ms']:.2f} lost={int(sink_stats['lost'])}"
        f" cpu_pct={result['cpu_pct']:.1f}"
        f" loop={args.loop} echo={int(args.echo)} subticks={args.subticks}"
        f" measured_calls={measured}"
        f" jitter_p50_ms={sink_stats['jitter_p50_ms']:.2f}"
        f" jitter_max_ms={sink_stats['jitter_max_ms']:.2f}"
        f" packets={int(sink_stats['packets'])}/{int(expected)}"
        f" clock_busy_pct={result['clock_busy_pct']:.1f}"
        f" late_subticks={int(result['late_subticks'])}"
        f" max_late_ms={result['max_late_ms']:.1f} skipped={int(result['skipped'])}"
        + (f" echoed_received={int(result['received'])}" if args.echo else "")
    )


if __name__ == "__main__":
    main()
