"""Concurrent calls: N answered calls streaming G.711 both ways through one server process.

    .venv/bin/python bench/concurrent_calls.py --calls 1000 --hold 30 --json cc.json

Set-up (everything on 127.0.0.1, everything stopped at the end):

* ``dialflow serve`` pinned to core 0 (``taskset -c 0``); this process, SIPp and the far
  ends on core 1.
* SIP is real: ``ceil(N / --calls-per-sipp)`` SIPp UAS processes
  (``bench/scenarios/uas_hold.xml``) answer the INVITEs and wait for the BYE.
* Media is measured at the far end by processes of our own. Each SIPp's SDP answer
  points the media at one far-end process (``-key farend_port``), so every call's RTP
  goes there. The far end timestamps every datagram in the kernel (``SO_TIMESTAMPNS``:
  the arrival time at the socket, not when Python got round to reading it, so its own
  scheduling delays on a busy core do not count against the server), and echoes it
  straight back so that the server also receives 50 packets/s per call (AMD, the
  flow's listener and the jitter buffers all work on real input).
* The flow says a prompt (rendered once, then cached), pauses 1 s and says it again,
  for as long as the call lasts; AMD runs in async mode on every call (5 s, every
  result allowed to continue the flow).

Procedure: one warm-up call (TTS render, imports); baseline RSS; ``POST …/calls`` at
``--ramp-rate`` per second until N are placed; wait until N are ``in_progress``; record
for ``--hold`` seconds (server CPU from ``/proc/<pid>/stat``, what else ran on core 0,
every packet at the far end); RSS; then ``DELETE`` every call and wait for them to end.

Figures (over the hold window, pooled over all calls):

* ``jitter_p99_ms``: p99 of |arrival interval − RTP timestamp interval| between
  consecutive packets of a call (20 ms apart when all is well): the send-interval
  jitter as seen by the far end;
* ``lost``: sequence-number gaps (RFC 3550 §A.3), i.e. datagrams that never arrived;
* ``late``: packets that arrived more than 20 ms after their slot on the call's own
  schedule (schedule = RTP timestamp / 8 kHz, anchored at the call's earliest packet),
  plus frames the server skipped (timestamp jumps with no packet: the clock stalled);
* ``cpu_pct``: server CPU over the window, % of one core;
* ``rss_per_call_kb``: (RSS during the hold − RSS before the ramp) / answered calls.

One line on stdout (shown folded here):

    concurrent_calls: calls=1000 answered=1000 jitter_p99_ms=3.1 lost=0 late=0 \
        cpu_pct=84 rss_per_call_kb=150
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import selectors
import socket
import struct
import sys
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # after the sys.path set-up: the script runs from anywhere
    HOST,
    LOAD_CORE,
    SERVER_CORE,
    TERMINAL,
    CpuWindow,
    PySpy,
    ServerProcess,
    SippUas,
    add_server_options,
    diag_summary,
    list_all_calls,
    log,
    machine_info,
    pin_self,
    profile_summary,
    run_loop,
    setup_org,
    udp_drops,
    write_json,
)

ORG = "bench"
PROMPT = (
    "Thank you for calling. This is a benchmark of the dialflow media path. "
    "Every call hears this prompt, again and again, until the test hangs up."
)
FLOW: dict[str, Any] = {
    "id": "hold",
    "name": "concurrent calls benchmark: prompt, listen, repeat",
    "start": "prompt",
    "maxSteps": 100000,
    "nodes": {
        "prompt": {"type": "say", "text": PROMPT, "bargeIn": False, "next": "listen"},
        "listen": {"type": "pause", "seconds": 1, "next": "prompt"},
    },
}
AMD = {
    "enabled": True,
    "mode": "async",
    "runFlowOn": ["human", "machine", "fax", "unknown"],  # keep every call up
}
FRAME_MS = 20.0
LATE_MS = 20.0
SAMPLES_PER_MS = 8  # G.711 at 8 kHz
TELEPHONE_EVENT_PT = 101
STOP = "stop"
# Linux <asm-generic/socket.h>: SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) is 35; the
# timestamp arrives as a struct timespec (CLOCK_REALTIME). Python 3.11 has no constant.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


# --------------------------------------------------------------------------- far end


def farend_main(conn: Connection, core: int | None, echo: bool) -> None:
    """One far-end media process: timestamp every RTP packet, echo it, report on request.

    Protocol on ``conn``: sends its port; then "record" starts recording, "stop" stops
    and sends back the arrays, "quit" ends the process.
    """
    pin_self(core)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for force, plain in (
        (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF),
        (getattr(socket, "SO_SNDBUFFORCE", 32), socket.SO_SNDBUF),
    ):
        try:  # root may exceed net.core.rmem_max: 16 MB = seconds of traffic
            sock.setsockopt(socket.SOL_SOCKET, force, 16 << 20)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    conn.send(port)

    ports = array("H")
    seqs = array("H")
    stamps = array("I")
    ptypes = array("B")
    times = array("q")
    recording = False
    received = echoed = echo_errors = 0
    cpu0 = wall0 = 0.0
    cmsg_space = socket.CMSG_SPACE(16)
    unpack_ts = struct.Struct("qq").unpack_from
    unpack_hdr = struct.Struct("!BBHI").unpack_from
    recvmsg = sock.recvmsg
    sendto = sock.sendto
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    sel.register(conn, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select(0.2):
            if key.fileobj is conn:
                command = conn.recv()
                if command == "record":
                    recording = True
                    cpu0, wall0 = time.process_time(), time.monotonic()
                elif command == STOP:
                    recording = False
                    conn.send(
                        {
                            "port": port,
                            "ports": ports.tobytes(),
                            "seqs": seqs.tobytes(),
                            "stamps": stamps.tobytes(),
                            "ptypes": ptypes.tobytes(),
                            "times": times.tobytes(),
                            # kernel stamps are CLOCK_REALTIME: this maps them to monotonic
                            "realtime_minus_monotonic_ns": time.time_ns() - time.monotonic_ns(),
                            "received": received,
                            "echoed": echoed,
                            "echo_errors": echo_errors,
                            "cpu_pct": 100
                            * (time.process_time() - cpu0)
                            / max(1e-9, time.monotonic() - wall0),
                        }
                    )
                    for a in (ports, seqs, stamps, ptypes, times):
                        del a[:]
                elif command == "quit":
                    sock.close()
                    return
                continue
            while True:
                try:
                    data, anc, _flags, addr = recvmsg(2048, cmsg_space)
                except BlockingIOError:
                    break
                received += 1
                if echo:
                    try:
                        sendto(data, addr)
                        echoed += 1
                    except OSError:
                        echo_errors += 1
                if recording and len(data) >= 12 and anc:
                    sec, nsec = unpack_ts(anc[0][2])
                    _vpxcc, mpt, seq, ts = unpack_hdr(data)
                    times.append(sec * 1_000_000_000 + nsec)
                    ports.append(addr[1])
                    seqs.append(seq)
                    stamps.append(ts)
                    ptypes.append(mpt & 0x7F)


class FarEnds:
    """``count`` far-end processes (fork), each with its own port."""

    def __init__(self, count: int, *, core: int | None, echo: bool) -> None:
        ctx = mp.get_context("fork")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.ports: list[int] = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=farend_main, args=(child, core, echo), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            if not conn.poll(10):
                raise RuntimeError("far end did not start")
            self.ports.append(int(conn.recv()))

    def record(self) -> None:
        for conn in self.conns:
            conn.send("record")

    def stop_recording(self) -> list[dict[str, Any]]:
        for conn in self.conns:
            conn.send(STOP)
        return [conn.recv() for conn in self.conns]

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send("quit")
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(2)


def _unwrap(values: npt.NDArray[np.int64], modulus: int) -> npt.NDArray[np.int64]:
    """Extend 16/32-bit counters that wrap, assuming steps of less than half the range."""
    if len(values) < 2:
        return values
    steps = np.diff(values)
    half = modulus // 2
    steps = (steps + half) % modulus - half
    return np.concatenate(([values[0]], values[0] + np.cumsum(steps)))


def analyse(reports: list[dict[str, Any]], window: float) -> dict[str, Any]:
    """Per-call loss/lateness and pooled jitter from the far ends' packet records."""
    ports = np.concatenate([np.frombuffer(r["ports"], dtype=np.uint16) for r in reports])
    seqs = np.concatenate([np.frombuffer(r["seqs"], dtype=np.uint16) for r in reports])
    stamps = np.concatenate([np.frombuffer(r["stamps"], dtype=np.uint32) for r in reports])
    ptypes = np.concatenate([np.frombuffer(r["ptypes"], dtype=np.uint8) for r in reports])
    times = np.concatenate(
        [
            np.frombuffer(r["times"], dtype=np.int64) - r["realtime_minus_monotonic_ns"]
            for r in reports
        ]
    )
    audio = ptypes != TELEPHONE_EVENT_PT
    ports, seqs, stamps, times = ports[audio], seqs[audio], stamps[audio], times[audio]
    # Group by source port (one leg each), keeping arrival order inside a group.
    order = np.argsort(ports, kind="stable")
    ports, seqs, stamps, times = ports[order], seqs[order], stamps[order], times[order]
    cuts = np.flatnonzero(np.diff(ports)) + 1
    deviations: list[npt.NDArray[np.float64]] = []
    lost = late = skipped = duplicates = 0
    per_call_packets: list[int] = []
    worst: list[tuple[float, int]] = []
    late_at: list[npt.NDArray[np.int64]] = []  # monotonic ns of late arrivals
    late_by: list[npt.NDArray[np.float64]] = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(ports)], strict=True):
        if hi - lo < 2:
            continue
        seq = _unwrap(seqs[lo:hi].astype(np.int64), 1 << 16)
        ts = _unwrap(stamps[lo:hi].astype(np.int64), 1 << 32)
        t_ms = (times[lo:hi] - times[lo]) / 1e6
        unique = len(np.unique(seq))
        duplicates += int(hi - lo) - unique
        lost += int(seq.max() - seq.min() + 1 - unique)
        per_call_packets.append(hi - lo)
        step = np.diff(seq) == 1
        d_arrival = np.diff(t_ms)[step]
        d_media = np.diff(ts)[step] / SAMPLES_PER_MS
        deviations.append(np.abs(d_arrival - d_media))
        # Frames the sender let pass without a packet (timestamp jumps, clock stall).
        skipped += int(np.sum(np.maximum(0.0, np.round(d_media / FRAME_MS) - 1)))
        offset = t_ms - (ts - ts[0]) / SAMPLES_PER_MS
        lateness = offset - offset.min()
        is_late = lateness > LATE_MS
        late += int(np.count_nonzero(is_late))
        late_at.append(times[lo:hi][is_late])
        late_by.append(lateness[is_late])
        worst.append((float(lateness.max()), int(ports[lo])))
    dev = np.concatenate(deviations) if deviations else np.zeros(0)
    q = (lambda p: round(float(np.percentile(dev, p)), 3)) if len(dev) else (lambda p: None)
    expected = window * 1000 / FRAME_MS
    pkts = np.array(per_call_packets) if per_call_packets else np.zeros(1)
    worst.sort(reverse=True)
    return {
        "streams": len(per_call_packets),
        "packets": int(len(ports)),
        "intervals": int(len(dev)),
        "jitter_ms": {"p50": q(50), "p99": q(99), "p99.9": q(99.9), "max": q(100)},
        "lost": lost,
        "late_over_20ms": late,
        "skipped_frames": skipped,
        "late": late + skipped,
        "duplicates": duplicates,
        "packets_per_call": {
            "expected": round(expected),
            "min": int(pkts.min()),
            "median": float(np.median(pkts)),
            "max": int(pkts.max()),
        },
        "worst_lateness_ms": [round(w, 1) for w, _ in worst[:5]],
        "late_episodes": _episodes(late_at, late_by),
    }


def _episodes(
    at: list[npt.NDArray[np.int64]], by: list[npt.NDArray[np.float64]], gap_ms: float = 100
) -> list[dict[str, float]]:
    """Late packets clustered in time: when (monotonic s), how long, how late, how many."""
    if not at or not sum(len(a) for a in at):
        return []
    t = np.concatenate(at)
    lateness = np.concatenate(by)
    order = np.argsort(t)
    t, lateness = t[order], lateness[order]
    cuts = np.flatnonzero(np.diff(t) > gap_ms * 1e6) + 1
    out = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(t)], strict=True):
        out.append(
            {
                "t": round(float(t[lo]) / 1e9, 3),
                "ms": round(float(t[hi - 1] - t[lo]) / 1e6, 1),
                "max_late_ms": round(float(lateness[lo:hi].max()), 1),
                "packets": int(hi - lo),
            }
        )
    out.sort(key=lambda e: -e["max_late_ms"])
    return out[:10]


# --------------------------------------------------------------------------- driving


async def count_status(client: httpx.AsyncClient, headers: dict[str, str]) -> Counter[str]:
    calls = await list_all_calls(client, ORG, headers)
    return Counter(c["status"] for c in calls)


async def place_calls(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    bodies: list[dict[str, Any]],
    rate: float,
) -> tuple[list[str], Counter[str]]:
    """POST every body, open loop at ``rate`` per second; the session ids and errors."""
    ids: list[str | None] = [None] * len(bodies)
    errors: Counter[str] = Counter()

    async def post(i: int) -> None:
        try:
            r = await client.post(
                f"/v1/organizations/{ORG}/flows/{FLOW['id']}/calls", json=bodies[i], headers=headers
            )
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] += 1
            return
        if r.status_code == 202:
            ids[i] = r.json()["sessionId"]
        else:
            errors[str(r.status_code)] += 1

    tasks: set[asyncio.Task[None]] = set()
    t0 = time.monotonic()
    for i in range(len(bodies)):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.get_running_loop().create_task(post(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return [i for i in ids if i], errors


async def hang_up_all(
    client: httpx.AsyncClient, headers: dict[str, str], ids: list[str], parallel: int = 50
) -> int:
    """DELETE every call (``parallel`` at a time); how many DELETEs did not answer 200."""
    sem = asyncio.Semaphore(parallel)
    bad = 0

    async def delete(session_id: str) -> None:
        nonlocal bad
        async with sem:
            try:
                r = await client.delete(
                    f"/v1/organizations/{ORG}/calls/{session_id}", headers=headers
                )
                bad += r.status_code != 200
            except httpx.HTTPError:
                bad += 1

    await asyncio.gather(*(delete(i) for i in ids))
    return bad


async def run(
    args: argparse.Namespace, server: ServerProcess, sipps: list[SippUas], farends: FarEnds
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as client:
        headers = await setup_org(client, server.admin(), FLOW, org_id=ORG)
        max_duration = int(args.calls / args.ramp_rate + args.hold + 180)

        def body(i: int) -> dict[str, Any]:
            return {
                "to": sipps[i % len(sipps)].uri,
                "mode": "poll",
                "ringTimeout": 30,
                "maxDuration": max_duration,  # a safety net: DELETE normally ends them
                "amd": AMD,
            }

        # Warm-up: renders and caches the prompt, loads AMD and flow code paths.
        warm, errors = await place_calls(client, headers, [body(0)], 1)
        if not warm:
            raise RuntimeError(f"warm-up call refused: {errors}")
        await asyncio.sleep(3)
        await hang_up_all(client, headers, warm)
        await asyncio.sleep(1)
        rss_base = server.rss()

        log(f"ramp: {args.calls} calls at {args.ramp_rate}/s")
        t_ramp = time.monotonic()
        ids, post_errors = await place_calls(
            client, headers, [body(i) for i in range(args.calls)], args.ramp_rate
        )
        deadline = time.monotonic() + args.ramp_timeout
        answered = 0
        while True:
            counts = await count_status(client, headers)
            answered = counts.get("in_progress", 0)
            pending = sum(counts.get(s, 0) for s in ("queued", "dialing", "ringing"))
            if answered >= len(ids) or pending == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        ramp_seconds = time.monotonic() - t_ramp
        log(f"{answered} answered after {ramp_seconds:.1f} s ({dict(counts)}); holding")
        await asyncio.sleep(args.settle)

        cpu = CpuWindow(server.pid, SERVER_CORE)
        drops0 = udp_drops(farends.ports)
        spy = PySpy(server.pid, args.profile, args.hold) if args.profile else None
        farends.record()
        if spy is not None:
            spy.start()
        cpu.start()
        t_hold = time.monotonic()
        await asyncio.sleep(args.hold / 2)
        rss_hold = server.rss()
        await asyncio.sleep(args.hold / 2)
        cpu.stop()
        diag = diag_summary(server.diag_events(t_hold, time.monotonic())) if args.diag else None
        reports = farends.stop_recording()
        drops = udp_drops(farends.ports) - drops0
        profile = None
        if spy is not None:
            await asyncio.to_thread(spy.wait)
            profile = profile_summary(spy.raw)
        counts_after = await count_status(client, headers)
        still_up = counts_after.get("in_progress", 0)

        log("hanging up")
        delete_errors = await hang_up_all(client, headers, ids)
        final: dict[str, Any] = {}
        end_deadline = time.monotonic() + 60
        while time.monotonic() < end_deadline:
            final = {c["sessionId"]: c for c in await list_all_calls(client, ORG, headers)}
            if all(final.get(i, {}).get("status") in TERMINAL for i in ids):
                break
            await asyncio.sleep(1.0)

    media = analyse(reports, cpu.wall)
    amd_results = Counter(
        (final.get(i, {}).get("amd") or {}).get("result") for i in ids if i in final
    )
    return {
        "placed": len(ids),
        "post_errors": dict(post_errors),
        "answered": answered,
        "still_up_after_hold": still_up,
        "ramp_seconds": round(ramp_seconds, 1),
        "hold_seconds": round(cpu.wall, 2),
        "server_cpu_pct": round(cpu.cpu_pct, 1),
        # Robust to other load on the core: CPU per call-frame actually sent (and echoed
        # back), and what that costs for --calls calls at 50 frames/s, in % of one core.
        "server_cpu_us_per_frame": round(cpu.cpu * 1e6 / max(1, media["packets"]), 2),
        "projected_cpu_pct": round(cpu.cpu * 100 / max(1, media["packets"]) * 50 * args.calls, 1),
        "core0_others_pct": round(cpu.others_pct, 1),
        "core0_states_pct": cpu.core_pct,
        "rss_base_mb": round(rss_base / 2**20, 1),
        "rss_hold_mb": round(rss_hold / 2**20, 1),
        "rss_per_call_kb": round((rss_hold - rss_base) / max(1, answered) / 1024, 1),
        "media": media,
        "farend": {
            "processes": len(reports),
            "received": sum(r["received"] for r in reports),
            "echoed": sum(r["echoed"] for r in reports),
            "echo_errors": sum(r["echo_errors"] for r in reports),
            "socket_drops_in_window": drops,
            "cpu_pct": [round(r["cpu_pct"], 1) for r in reports],
        },
        "delete_errors": delete_errors,
        "final_statuses": dict(Counter(final.get(i, {}).get("status", "missing") for i in ids)),
        "amd_results": {str(k): v for k, v in amd_results.items()},
        "profile": profile,
        "diag": diag,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="concurrent calls to hold")
    parser.add_argument("--hold", type=float, default=30, help="measured seconds at N calls")
    parser.add_argument("--ramp-rate", type=float, default=100, help="calls placed per second")
    parser.add_argument("--ramp-timeout", type=float, default=60, help="extra wait for answers")
    parser.add_argument("--settle", type=float, default=1.0, help="pause before measuring")
    parser.add_argument("--calls-per-sipp", type=int, default=400, help="calls per SIPp UAS")
    parser.add_argument("--no-echo", action="store_true", help="far ends do not echo RTP back")
    add_server_options(parser, profile_window="over the hold window")
    parser.add_argument(
        "--diag",
        action="store_true",
        help="log GC pauses and event-loop stalls inside the server (sitecustomize)",
    )
    args = parser.parse_args(argv)
    if args.calls < 1 or args.hold <= 0 or args.ramp_rate <= 0 or args.calls_per_sipp < 1:
        parser.error("--calls, --hold, --ramp-rate and --calls-per-sipp must be positive")

    pinned = pin_self(LOAD_CORE)
    info: dict[str, Any] = {
        "benchmark": "concurrent_calls",
        "args": vars(args),
        "machine": machine_info(),
        "driver_pinned_to_core1": pinned,
    }
    n_sipp = max(1, math.ceil(args.calls / args.calls_per_sipp))
    per_sipp = [len(range(k, args.calls, n_sipp)) for k in range(n_sipp)]
    per_sipp[0] += 1  # the warm-up call
    farends = FarEnds(n_sipp, core=LOAD_CORE, echo=not args.no_echo)
    server = ServerProcess(
        rtp_ports=4 * args.calls + 200, keep=args.keep, nice=args.nice, diag=args.diag
    )
    sipps: list[SippUas] = []
    life = args.calls / args.ramp_rate + args.ramp_timeout + args.hold + 180
    try:
        server.start()
        info["server_argv"] = server.argv
        for k in range(n_sipp):
            sipps.append(
                SippUas(
                    "uas_hold",
                    calls=per_sipp[k],
                    timeout=life,
                    keys={"farend_port": str(farends.ports[k])},
                ).start()
            )
        info["sipp_argv"] = [s.argv for s in sipps]
        info.update(run_loop(run(args, server, sipps, farends)))
        for s in sipps:
            s.wait(10)
    finally:
        stats = [s.stop() for s in sipps]
        info["server_exit"] = server.stop()
        farends.close()
    info["sipp"] = {
        "successful": sum(s.successful for s in stats),
        "failed": sum(s.failed for s in stats),
        "retrans": sum(s.total_retrans for s in stats),
        "failure_reasons": [s.failure_reasons for s in stats],
    }
    write_json(args.json, info)
    media = info["media"]
    p99 = media["jitter_ms"]["p99"]
    jitter = f"{p99:.1f}" if p99 is not None else "nan"
    print(
        f"concurrent_calls: calls={args.calls} answered={info['answered']} "
        f"jitter_p99_ms={jitter} lost={media['lost']} late={media['late']} "
        f"cpu_pct={info['server_cpu_pct']:.0f} rss_per_call_kb={info['rss_per_call_kb']:.0f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
