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
* The flow is a little IVR menu, over and over for as long as the call lasts: it sends
  the far end a DTMF cue (``send_dtmf``), waits for one digit (``gather``), answers
  with a short prompt, says the long prompt and pauses 1 s. Both prompts are rendered
  once, then cached. AMD runs in async mode on every call (5 s, every result allowed
  to continue the flow).
* The far end answers each cue, after a random 0.3-1.3 s (so the digits of different
  calls are spread in time), with one RFC 4733 digit (100 ms: four updates, then the
  end packet three times). Its packets take the place of echoed packets, so the
  server still receives 50 packets/s, each a random 0-20 ms after the packet it
  replaces (a caller's digit reaches the server at any point of its 20 ms cycle). It
  timestamps the first end packet (E bit) as it leaves, and the arrival (kernel stamp)
  of the server's first non-silent packet after it: the first frame of the reply
  prompt (the gather sends silence, 0xFF, and flite prompts start with sound: their
  first frame is not all 0xFF). The server's cue is echoed as silence, not as an event.

Procedure: one warm-up call (TTS render, imports); baseline RSS; ``POST …/calls`` at
``--ramp-rate`` per second until N are placed; wait until N are ``in_progress``; wait
``--settle`` seconds (default 6: every call's AMD, 5 s at most, has decided, so the window
measures N calls streaming; at 100 calls/s the ramp itself runs ~500 detectors at once,
see docs/performance.md); record for ``--hold`` seconds (server CPU from
``/proc/<pid>/stat``, what else ran on core 0, every packet at the far end); RSS; then
``DELETE`` every call and wait for them to end.

Figures (over the hold window, pooled over all calls):

* ``jitter_p99_ms``: p99 of |arrival interval − RTP timestamp interval| between
  consecutive packets of a call (20 ms apart when all is well): the send-interval
  jitter as seen by the far end;
* ``lost``: sequence-number gaps (RFC 3550 §A.3), i.e. datagrams that never arrived
  (the cue's telephone-event packets count as arrived; jitter and lateness are over
  the audio packets);
* ``late``: packets that arrived more than 20 ms after their slot on the call's own
  schedule (schedule = RTP timestamp / 8 kHz, anchored at the call's earliest packet),
  plus frames the server skipped (timestamp jumps with no packet: the clock stalled);
* ``cpu_pct``: server CPU over the window, % of one core;
* ``rss_per_call_kb``: (RSS during the hold − RSS before the ramp) / answered calls.

In the JSON (``dtmf``) and on stderr only (the summary line stays as it is), over the
digits whose end packet left during the hold window:

* ``dtmf_to_prompt_ms`` (p50/p99/max, ``count``): from the digit's first end packet
  leaving the far end to the reply prompt's first packet arriving there. From the end
  packet because that is where the server accepts the digit (``DtmfReceiver``: at
  the first E packet); from the first event packet (``first_packet_to_prompt_ms``) it
  adds the tone's own 80 ms, a property of the caller, not of the server;
* ``digit_wait_ms``: the digit's own transit, from leaving the far end to the call's
  next tick (the arrival of the first server packet after it). The server reads its
  RTP sockets at the call's tick, so that is the first moment it can have the digit;
* ``tick_to_prompt_ms`` = ``dtmf_to_prompt_ms`` − ``digit_wait_ms``, and
  ``prompt_tick``: the prompt's first packet was the first packet of the call after
  the digit (``next``), the one after it (``second``) or later. "A cached prompt
  starts within one 20 ms tick" is ``within_one_tick_pct``: the share with the prompt
  at the latest on the tick after the one at which the digit could be read;
* ``prompt_first_frames``: distinct first frames detected (1: every detection is the
  reply's first frame); ``no_prompt``: digits with no prompt; ``whole_run``: the same
  over every digit since the start (warm-up and ramp too).

One line on stdout (shown folded here):

    concurrent_calls: calls=1000 answered=1000 jitter_p99_ms=3.1 lost=0 late=0 \
        cpu_pct=84 rss_per_call_kb=150
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import math
import multiprocessing as mp
import random
import selectors
import socket
import struct
import sys
import time
import zlib
from array import array
from collections import Counter
from collections.abc import Callable
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
REPLY = "You pressed a key."
CUE_DIGIT = "9"
FLOW: dict[str, Any] = {
    "id": "hold",
    "name": "concurrent calls benchmark: DTMF menu, reply, prompt, listen, repeat",
    # The menu first: the warm-up call renders (caches) the reply before the ramp.
    "start": "cue",
    "maxSteps": 100000,
    "nodes": {
        # The cue tells the far end that the gather is about to listen: a digit sent
        # during the long prompt (no barge-in) would wait in the digit buffer instead.
        "cue": {"type": "send_dtmf", "digits": CUE_DIGIT, "next": "menu"},
        "menu": {
            "type": "gather",
            "input": ["dtmf"],
            "numDigits": 1,
            "timeout": 10,
            "saveAs": "choice",
            "next": "reply",
        },
        "reply": {"type": "say", "text": REPLY, "bargeIn": False, "next": "prompt"},
        "prompt": {"type": "say", "text": PROMPT, "bargeIn": False, "next": "listen"},
        "listen": {"type": "pause", "seconds": 1, "next": "cue"},
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
TELEPHONE_EVENT_PT = 101  # uas_hold.xml's answer: a=rtpmap:101 telephone-event/8000
PCMU_PT = 0  # the only audio type uas_hold.xml answers
SILENCE = b"\xff" * 160  # 20 ms of PCMU silence: what the server sends with nothing to play
DIGIT_DELAY_S = (0.3, 1.3)  # far end: from the server's cue to its digit
DIGIT_UPDATES = 4  # RFC 4733 update packets before the end packet (100 ms tone)
END_REPEATS = 3  # RFC 4733 §2.5.1.4: the end packet is sent three times
PROMPT_TIMEOUT_NS = 20_000_000_000  # a digit with no prompt after this is given up
STOP = "stop"
# Linux <asm-generic/socket.h>: SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) is 35; the
# timestamp arrives as a struct timespec (CLOCK_REALTIME). Python 3.11 has no constant.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


# --------------------------------------------------------------------------- far end

_HEADER = struct.Struct("!BBHI")  # V/P/X/CC, M/PT, sequence, timestamp (SSRC copied as is)
_EVENT = struct.Struct("!BBH")  # RFC 4733 §2.3: event, E/R/volume, duration


class _Exchange:
    """One call's digit exchange, from the server's cue to the reply prompt."""

    __slots__ = (
        "cue_seq",
        "cue_ts",
        "done",
        "due",
        "event_ts",
        "phase",
        "sent",
        "t_end",
        "t_first",
        "t_next",
        "ts_next",
    )

    def __init__(self, cue_seq: int, cue_ts: int, due: int) -> None:
        self.cue_seq = cue_seq
        self.cue_ts = cue_ts
        self.due = due  # ns (CLOCK_REALTIME, as the kernel stamps): when to start the digit
        self.sent = 0  # digit packets made so far
        self.phase = 0  # ns: each digit packet leaves this long after the packet it replaces
        self.event_ts = 0
        self.t_first = 0  # ns: first event packet left
        self.t_end = 0  # ns: first end packet left (the server accepts the digit there)
        self.ts_next = -1  # RTP timestamp of the first server packet after t_end
        self.t_next = 0  # ns: its arrival
        self.done = False  # the reply prompt (or the give-up) has been recorded


class DtmfPeer:
    """The far end's side of the DTMF menu for every call of one far-end process.

    ``packet`` takes each datagram from the server (with its kernel arrival stamp) and
    returns what to send back at once in place of its echo, ``b""`` for nothing now
    (a digit packet is scheduled instead), or None for the plain echo. ``flush`` sends
    the scheduled digit packets that are due (through ``sendto``) and stamps them as
    they leave; ``next_due`` says when the next one is. Calls are keyed by the server's
    RTP port; only calls in an exchange are in ``active``, so the common packet costs
    one dict lookup.

    * A telephone-event packet from the server is its cue: a digit is due after a
      random delay. The cue itself is not echoed as an event (the server would take it
      for the far end's digit) but as silence on the stream's timestamp.
    * Once due, the digit's packets replace echoes (same sequence numbers and SSRC, so
      the server's receiver sees one continuous stream at 50 packets/s), each sent a
      random phase (0-20 ms, one per digit) after the packet it replaces. Sent at
      once, every digit would reach the server just after the call's own tick, at
      the same point of the server's 20 ms cycle, and the latency would depend on
      what the server does at that point rather than on a caller's random timing.
    * From the first end packet on, the first server packet that is not silence is the
      reply prompt's first frame: one event is recorded.
    """

    def __init__(
        self,
        *,
        echo: bool = True,
        seed: int | None = None,
        digit: int = 5,
        clock: Callable[[], int] = time.time_ns,
        sendto: Callable[[bytes, Any], object],
    ) -> None:
        self.echo = echo
        self.clock = clock  # CLOCK_REALTIME ns, the kernel stamps' clock
        self.sendto = sendto
        self.send_errors = 0
        self.packets_sent = 0  # digit packets (through ``sendto``)
        # (due ns, order, packet, address, exchange, index in the digit)
        self.queue: list[tuple[int, int, bytes, Any, _Exchange, int]] = []
        self._order = 0
        self.digit = digit
        self.rng = random.Random(seed)
        self.active: dict[int, _Exchange] = {}
        self.digits_sent = 0
        self.first = array("q")
        self.end = array("q")
        self.prompt = array("q")  # 0: no prompt within PROMPT_TIMEOUT_NS
        self.next = array("q")  # arrival of the first server packet after the digit
        self.ts_next = array("I")  # and its RTP timestamp
        self.ts_prompt = array("I")
        self.crc = array("I")  # of the prompt's first frame: every reply starts alike

    def packet(self, addr: Any, data: bytes, t_ns: int) -> bytes | None:
        if len(data) < 12:
            return None
        pt = data[1] & 0x7F
        port = addr[1]
        ex = self.active.get(port)
        if pt == TELEPHONE_EVENT_PT:
            _b0, _b1, seq, ts = _HEADER.unpack_from(data)
            if ex is None:
                delay = self.rng.uniform(*DIGIT_DELAY_S)
                ex = self.active[port] = _Exchange(seq, ts, t_ns + int(delay * 1e9))
            elif ts != ex.cue_ts:
                ex.cue_seq, ex.cue_ts = seq, ts
            if not self.echo:
                return None
            # The event's packets all carry its start timestamp; the stream's own
            # timestamp advanced one frame per packet meanwhile (RFC 4733 §2.5.1.1).
            audio_ts = (ex.cue_ts + 160 * ((seq - ex.cue_seq) & 0xFFFF)) & 0xFFFFFFFF
            return _HEADER.pack(0x80, PCMU_PT, seq, audio_ts) + data[8:12] + SILENCE
        if ex is None or pt != PCMU_PT:
            return None
        if ex.t_end or ex.sent >= DIGIT_UPDATES + END_REPEATS:
            # Packets that arrived before the end packet left (a backlog in this
            # process's socket) were sent before the server could have the digit.
            if ex.t_end and not ex.done and t_ns > ex.t_end:
                ts = _HEADER.unpack_from(data)[3]
                if ex.ts_next < 0:
                    ex.ts_next, ex.t_next = ts, t_ns
                if data[12:] != SILENCE:
                    self._record(ex, t_ns, ts, zlib.crc32(data[12:]))
                elif t_ns - ex.t_end > PROMPT_TIMEOUT_NS:
                    self._record(ex, 0, ts, 0)
            if ex.sent >= DIGIT_UPDATES + END_REPEATS:
                if ex.done:
                    del self.active[port]
                return None
        elif ex.sent == 0 and t_ns < ex.due:
            return None
        self._schedule_digit_packet(ex, addr, data, t_ns)
        return b""

    def _schedule_digit_packet(self, ex: _Exchange, addr: Any, data: bytes, t_ns: int) -> None:
        """The digit's next packet, in place of the echo of ``data`` (its seq and SSRC)."""
        _b0, _b1, seq, ts = _HEADER.unpack_from(data)
        k = ex.sent
        if k == 0:
            ex.event_ts = ts
            ex.phase = self.rng.randrange(20_000_000)
            self.digits_sent += 1
        end = k >= DIGIT_UPDATES
        duration = 160 * (DIGIT_UPDATES + 1 if end else k + 1)
        packet = (
            _HEADER.pack(0x80, (0x80 if k == 0 else 0) | TELEPHONE_EVENT_PT, seq, ex.event_ts)
            + data[8:12]
            + _EVENT.pack(self.digit, (0x80 if end else 0) | 10, duration)
        )
        ex.sent = k + 1
        self._order += 1
        heapq.heappush(self.queue, (t_ns + ex.phase, self._order, packet, addr, ex, k))

    def next_due(self) -> int | None:
        """When (ns, CLOCK_REALTIME) the next scheduled digit packet is due, if any."""
        return self.queue[0][0] if self.queue else None

    def flush(self, now_ns: int) -> None:
        """Send the digit packets due by ``now_ns``."""
        queue = self.queue
        while queue and queue[0][0] <= now_ns:
            _due, _order, packet, addr, ex, k = heapq.heappop(queue)
            # Stamped just before the send: on loopback the datagram is in the server's
            # socket when sendto returns, microseconds later.
            if k == 0:
                ex.t_first = self.clock()
            elif k == DIGIT_UPDATES:
                ex.t_end = self.clock()
            try:
                self.sendto(packet, addr)
                self.packets_sent += 1
            except OSError:
                self.send_errors += 1

    def _record(self, ex: _Exchange, t_prompt: int, ts_prompt: int, crc: int) -> None:
        ex.done = True
        self.first.append(ex.t_first)
        self.end.append(ex.t_end)
        self.prompt.append(t_prompt)
        self.next.append(ex.t_next)
        self.ts_next.append(ex.ts_next)
        self.ts_prompt.append(ts_prompt)
        self.crc.append(crc)

    def report(self) -> dict[str, Any]:
        """Every recorded exchange (arrays as bytes), and the digits still waiting."""
        return {
            "first": self.first.tobytes(),
            "end": self.end.tobytes(),
            "prompt": self.prompt.tobytes(),
            "next": self.next.tobytes(),
            "ts_next": self.ts_next.tobytes(),
            "ts_prompt": self.ts_prompt.tobytes(),
            "crc": self.crc.tobytes(),
            "pending_end": array(
                "q", [ex.t_end for ex in self.active.values() if ex.t_end and not ex.done]
            ).tobytes(),
            "digits_sent": self.digits_sent,
            "send_errors": self.send_errors,
        }

    def clear(self) -> None:
        for a in (
            self.first,
            self.end,
            self.prompt,
            self.next,
            self.ts_next,
            self.ts_prompt,
            self.crc,
        ):
            del a[:]
        self.digits_sent = 0


def farend_main(conn: Connection, core: int | None, echo: bool) -> None:
    """One far-end media process: timestamp every RTP packet, echo it (or answer the
    DTMF menu in its place, ``DtmfPeer``), report on request.

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

    peer = DtmfPeer(echo=echo, sendto=sock.sendto)
    dtmf_active = peer.active
    dtmf_packet = peer.packet
    dtmf_queue = peer.queue
    flush = peer.flush
    rec_start_ns = 0
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
        timeout = 0.2
        due = peer.next_due()
        if due is not None:
            timeout = min(timeout, max(0.0, (due - time.time_ns()) / 1e9))
        for key, _ in sel.select(timeout):
            if key.fileobj is conn:
                command = conn.recv()
                if command == "record":
                    recording = True
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    rec_start_ns = time.time_ns()
                elif command == STOP:
                    recording = False
                    conn.send(
                        {
                            "dtmf": peer.report(),
                            "rec_start_ns": rec_start_ns,
                            "rec_stop_ns": time.time_ns(),
                            "port": port,
                            "ports": ports.tobytes(),
                            "seqs": seqs.tobytes(),
                            "stamps": stamps.tobytes(),
                            "ptypes": ptypes.tobytes(),
                            "times": times.tobytes(),
                            # kernel stamps are CLOCK_REALTIME: this maps them to monotonic
                            "realtime_minus_monotonic_ns": time.time_ns() - time.monotonic_ns(),
                            "received": received,
                            # digit packets replace echoes one for one
                            "echoed": echoed + peer.packets_sent,
                            "echo_errors": echo_errors + peer.send_errors,
                            "cpu_pct": 100
                            * (time.process_time() - cpu0)
                            / max(1e-9, time.monotonic() - wall0),
                        }
                    )
                    for a in (ports, seqs, stamps, ptypes, times):
                        del a[:]
                    peer.clear()
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
                reply: bytes | None = None
                # Only cues (telephone-event) and calls in a digit exchange do more.
                if (len(data) > 1 and data[1] & 0x7F == TELEPHONE_EVENT_PT) or (
                    addr[1] in dtmf_active
                ):
                    if anc:
                        sec, nsec = unpack_ts(anc[0][2])
                        t_ns = sec * 1_000_000_000 + nsec
                    else:
                        t_ns = time.time_ns()
                    reply = dtmf_packet(addr, data, t_ns)
                if (reply is None and echo) or reply:
                    try:
                        sendto(data if reply is None else reply, addr)
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
        if dtmf_queue:
            flush(time.time_ns())


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
    # The server's telephone-event packets (the menu's cue) count for loss: they take
    # sequence numbers. Not for timing: they all carry their event's start timestamp.
    audio = ptypes != TELEPHONE_EVENT_PT
    # Group by source port (one leg each), keeping arrival order inside a group.
    order = np.argsort(ports, kind="stable")
    ports, seqs, stamps, times = ports[order], seqs[order], stamps[order], times[order]
    audio = audio[order]
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
        unique = len(np.unique(seq))
        duplicates += int(hi - lo) - unique
        lost += int(seq.max() - seq.min() + 1 - unique)
        per_call_packets.append(hi - lo)
        is_audio = audio[lo:hi]
        if np.count_nonzero(is_audio) < 2:
            continue
        seq = seq[is_audio]
        ts = _unwrap(stamps[lo:hi][is_audio].astype(np.int64), 1 << 32)
        arrivals = times[lo:hi][is_audio]
        t_ms = (arrivals - arrivals[0]) / 1e6
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
        late_at.append(arrivals[is_late])
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


def analyse_dtmf(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Digit -> reply-prompt latency over the hold window, and over the whole run."""

    def cat(key: str, dtype: Any) -> npt.NDArray[Any]:
        parts = [np.frombuffer(r["dtmf"][key], dtype=dtype) for r in reports]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    first, end, prompt = cat("first", np.int64), cat("end", np.int64), cat("prompt", np.int64)
    next_ = cat("next", np.int64)
    ts_next, ts_prompt = cat("ts_next", np.uint32), cat("ts_prompt", np.uint32)
    crc = cat("crc", np.uint32)
    pending = cat("pending_end", np.int64)
    in_window = np.zeros(len(end), dtype=bool)
    pending_in_window = np.zeros(len(pending), dtype=bool)
    stop_ns = max((r["rec_stop_ns"] for r in reports), default=0)
    for r in reports:
        lo, hi = r["rec_start_ns"], r["rec_stop_ns"]
        in_window |= (end >= lo) & (end < hi)
        pending_in_window |= (pending >= lo) & (pending < hi)

    def stats(sel: npt.NDArray[np.bool_], waiting: npt.NDArray[np.int64]) -> dict[str, Any]:
        ok = sel & (prompt > 0)
        total = (prompt[ok] - end[ok]) / 1e6
        from_first = (prompt[ok] - first[ok]) / 1e6
        # The digit's own transit: from leaving the far end to the call's next tick,
        # the first moment the server could act on it (it reads sockets at the tick).
        wait = (next_[ok] - end[ok]) / 1e6
        after = (prompt[ok] - next_[ok]) / 1e6  # from that tick to the prompt
        # Frames the server sent between the digit and the prompt (0: the very next one).
        ticks = ((ts_prompt[ok] - ts_next[ok]) & 0xFFFFFFFF) // 160

        def q(values: npt.NDArray[np.float64], p: float) -> float | None:
            return round(float(np.percentile(values, p)), 2) if len(values) else None

        def pct(hits: npt.NDArray[np.bool_]) -> float | None:
            return round(100.0 * float(np.mean(hits)), 2) if len(hits) else None

        return {
            "count": int(ok.sum()),
            "dtmf_to_prompt_ms": {
                "p50": q(total, 50),
                "p99": q(total, 99),
                "max": q(total, 100),
                "min": q(total, 0),
            },
            "first_packet_to_prompt_ms": {"p50": q(from_first, 50), "p99": q(from_first, 99)},
            "digit_wait_ms": {"p50": q(wait, 50), "max": q(wait, 100)},
            "tick_to_prompt_ms": {"p50": q(after, 50), "p99": q(after, 99), "max": q(after, 100)},
            "prompt_tick": {
                "next": int(np.sum(ticks == 0)),
                "second": int(np.sum(ticks == 1)),
                "later": int(np.sum(ticks >= 2)),
            },
            # The prompt went out at the latest one tick after the first tick at which
            # the server could have had the digit.
            "within_one_tick_pct": pct(ticks <= 1),
            "no_prompt": int(np.sum(sel & (prompt == 0)))
            + int(np.sum(waiting < stop_ns - 1_000_000_000)),
            "waiting_at_stop": len(waiting),
            "prompt_first_frames": len(np.unique(crc[ok])),
        }

    out = stats(in_window, pending[pending_in_window])
    out["whole_run"] = stats(np.ones(len(end), dtype=bool), pending)
    out["digits_sent"] = sum(r["dtmf"]["digits_sent"] for r in reports)
    return out


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
    dtmf = analyse_dtmf(reports)
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
        "dtmf": dtmf,
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
    parser.add_argument(
        "--settle",
        type=float,
        default=6.0,
        help="pause between the last answer and the measured window (default 6 s: past the "
        "5 s AMD timeout, so the window measures calls streaming, not the ramp's AMD tail; "
        "use 1 to include it)",
    )
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
        info["server_autogroup_nice"] = server.autogroup
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
    dtmf = info["dtmf"]
    lat = dtmf["dtmf_to_prompt_ms"]
    log(
        f"dtmf_to_prompt: count={dtmf['count']} p50_ms={lat['p50']} p99_ms={lat['p99']} "
        f"max_ms={lat['max']} tick_to_prompt_p99_ms={dtmf['tick_to_prompt_ms']['p99']} "
        f"within_one_tick_pct={dtmf['within_one_tick_pct']} no_prompt={dtmf['no_prompt']} "
        f"(whole run: count={dtmf['whole_run']['count']} "
        f"p99_ms={dtmf['whole_run']['dtmf_to_prompt_ms']['p99']})"
    )
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
