"""Call set-up rate: ``POST …/calls`` at a fixed rate to a SIPp UAS, through a real server.

    .venv/bin/python bench/cps.py --rate 300 --seconds 60 --json cps.json

What it does (every process on 127.0.0.1, all of them stopped at the end):

1. starts ``dialflow serve`` pinned to core 0 (``taskset -c 0``), temporary data dir;
2. creates an organization (maxConcurrentCalls 5000, callsPerSecond 1000), an API key
   and a flow that pauses (the far end hangs up first);
3. starts a SIPp UAS pinned to core 1 (``bench/scenarios/uas_answer_bye.xml``, 4 MB
   socket buffers) that answers every INVITE and sends BYE 1 s after the ACK;
4. drives ``POST /v1/organizations/bench/flows/{flow}/calls`` (poll mode) at ``--rate``
   per second for ``--seconds`` from this process (pinned to core 1, uvloop, httpx over
   ``--connections`` keep-alive connections). Pacing is open-loop: request *i* is due
   at ``t0 + i / rate`` whatever happened to the earlier ones, and its latency is
   measured from that due time, so a slow server shows up as latency rather than as a
   lower rate (no coordinated omission);
5. after the last call, reads every call through the list endpoint until all are
   terminal, and SIPp's statistics (successful/failed calls, retransmissions in both
   directions from ``-trace_counts``).

A call counts as failed if its POST did not answer 202, or it did not end
``completed``, or it was still live 30 s after the last POST. One line on stdout:

    cps: rate=300 seconds=60 placed=18000 failed=0 retrans=0 api_p99_ms=31

``--json OUT`` writes the details (latency percentiles, statuses, server CPU and RSS,
SIPp counters, the machine's load, the noise from other processes on core 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

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
    autogroup_nice,
    free_port,
    list_all_calls,
    log,
    machine_info,
    percentile,
    pin_self,
    profile_summary,
    run_loop,
    server_latency,
    setup_org,
    write_json,
)

ORG = "bench"
FLOW: dict[str, Any] = {
    "id": "cps",
    "name": "cps benchmark: wait for the far end's BYE",
    "start": "wait",
    "nodes": {
        "wait": {"type": "pause", "seconds": 10, "next": "end"},
        "end": {"type": "hangup"},
    },
}
WARMUP_CALLS = 3
SETTLE_SECONDS = 30.0  # after the last POST: 1 s hold + BYE + slack


@dataclass(slots=True)
class Sample:
    index: int
    due: float
    sent: float = 0.0
    done: float = 0.0
    status: int = 0
    session_id: str | None = None
    error: str | None = None
    done_wall: float = 0.0  # time.time() at the answer: compared with the call's endedAt
    ended_at: str | None = None
    final_status: str | None = None

    @property
    def latency(self) -> float:
        """From the due time (open loop): what a client at this rate would see."""
        return self.done - self.due

    @property
    def service(self) -> float:
        """From the moment the request was handed to httpx."""
        return self.done - self.sent


@dataclass(slots=True)
class Connection:
    """One keep-alive HTTP connection (an httpx client limited to one connection)."""

    client: httpx.AsyncClient
    used: int = 0
    inflight: int = 0
    retired: bool = False


@dataclass
class Driver:
    base_url: str
    headers: dict[str, str]
    connections: int
    calls_per_conn: int
    body: dict[str, Any]
    request_timeout: float
    ok_codes: frozenset[int] = frozenset({202})
    conns: list[Connection] = field(default_factory=list)
    closing: set[asyncio.Task[None]] = field(default_factory=set)
    reconnects: int = 0

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            # No pool timeout: under overload requests queue and their latency shows it.
            timeout=httpx.Timeout(60.0, pool=None),
        )

    def open(self) -> None:
        self.conns = [Connection(self._new_client()) for _ in range(self.connections)]

    def pick(self, index: int) -> Connection:
        slot = index % len(self.conns)
        conn = self.conns[slot]
        if self.calls_per_conn and conn.used >= self.calls_per_conn:
            # A fresh connection (TCP set-up included in the next request's latency).
            conn.retired = True
            if conn.inflight == 0:
                self._close_later(conn)
            conn = self.conns[slot] = Connection(self._new_client())
            self.reconnects += 1
        conn.used += 1
        return conn

    def _close_later(self, conn: Connection) -> None:
        task = asyncio.get_running_loop().create_task(conn.client.aclose())
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def post(self, sample: Sample, flow_id: str) -> None:
        conn = self.pick(sample.index)
        conn.inflight += 1
        sample.sent = time.monotonic()
        try:
            # A client gives up some time after it wanted to send: that bounds the run
            # when the server cannot keep up (the request then counts as failed).
            left = sample.due + self.request_timeout - time.monotonic()
            r = await asyncio.wait_for(
                conn.client.post(f"/v1/organizations/{ORG}/flows/{flow_id}/calls", json=self.body),
                timeout=max(0.001, left),
            )
            sample.done_wall = time.time()
            sample.status = r.status_code
            if r.status_code in self.ok_codes:
                call = r.json()
                sample.session_id = call["sessionId"]
                sample.ended_at = call.get("endedAt")
                sample.final_status = call.get("status")
            else:
                sample.error = r.text[:200]
        except TimeoutError:
            sample.error = f"no answer within {self.request_timeout:g} s of the due time"
        except httpx.HTTPError as exc:
            sample.error = f"{type(exc).__name__}: {exc}"
        finally:
            sample.done = time.monotonic()
            conn.inflight -= 1
            if conn.retired and conn.inflight == 0:
                self._close_later(conn)

    async def close(self) -> None:
        for conn in self.conns:
            await conn.client.aclose()
        if self.closing:
            await asyncio.gather(*self.closing, return_exceptions=True)


# -- webhook receiver (--webhooks) -------------------------------------------------------


def _receiver_main(port: int, out: str, ready: Any) -> None:
    """A minimal HTTP/1.1 keep-alive receiver in its own process on the load core.

    It answers 200 at once and notes each request's arrival time; bodies are parsed
    only after the run, so the receiver stays cheap while calls are placed.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, {LOAD_CORE})
    records: list[tuple[float, bytes]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                records.append((arrived, body))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # the loop is ending: the connection is closed below
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, HOST, port, backlog=1024)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        ready.set()
        await stop.wait()
        server.close()

    run_loop(main())
    rows = []
    for arrived, body in records:
        with contextlib.suppress(ValueError, KeyError):
            doc = json.loads(body)
            rows.append(
                {
                    "arrived": arrived,
                    "id": doc["id"],
                    "type": doc["type"],
                    "occurredAt": doc["occurredAt"],
                    "sessionId": doc["sessionId"],
                }
            )
    Path(out).write_text(json.dumps(rows))


class WebhookReceiver:
    """Runs :func:`_receiver_main` in a child process; :meth:`stop` returns its records."""

    def __init__(self, out: Path) -> None:
        self.port = free_port(tcp=True)
        self.out = out
        ctx = multiprocessing.get_context("spawn")
        self._ready = ctx.Event()
        self._proc = ctx.Process(
            target=_receiver_main, args=(self.port, str(out), self._ready), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        self._proc.start()
        if not self._ready.wait(15):
            self._proc.kill()
            raise RuntimeError("the webhook receiver did not start")
        return self

    def stop(self) -> list[dict[str, Any]]:
        if self._proc.pid is not None and self._proc.is_alive():
            os.kill(self._proc.pid, signal.SIGTERM)
            self._proc.join(20)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        with contextlib.suppress(OSError, ValueError):
            rows: list[dict[str, Any]] = json.loads(self.out.read_text())
            return rows
        return []


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def webhook_delays(rows: list[dict[str, Any]], sessions: set[str]) -> dict[str, Any]:
    """Event time (payload ``occurredAt``, ms resolution) → first attempt's arrival."""
    first: dict[str, dict[str, Any]] = {}
    repeats = 0
    for row in rows:
        if row["sessionId"] not in sessions:
            continue  # warm-up calls
        if row["id"] in first:
            repeats += 1
            continue
        first[row["id"]] = row
    by_type: dict[str, list[float]] = {}
    for row in first.values():
        delay = (row["arrived"] - _unix(row["occurredAt"])) * 1000
        by_type.setdefault(row["type"], []).append(delay)
    every = [d for delays in by_type.values() for d in delays]
    return {
        "events": len(first),
        "repeated_attempts": repeats,
        "per_session": round(len(first) / len(sessions), 2) if sessions else None,
        "first_attempt_delay_ms": _dist(every) if every else None,
        "by_type_ms": {t: _dist(d) for t, d in sorted(by_type.items())},
    }


def sync_delays(samples: list[Sample]) -> dict[str, Any]:
    """Sync mode: the call's endedAt (ms resolution) → its 200 response at the client."""
    delays = [
        (s.done_wall - _unix(s.ended_at)) * 1000
        for s in samples
        if s.status == 200 and s.ended_at is not None
    ]
    return {
        "answered_200": len(delays),
        "answered_202": sum(1 for s in samples if s.status == 202),
        "end_to_response_ms": _dist(delays) if delays else None,
    }


async def wait_terminal(
    client: httpx.AsyncClient, headers: dict[str, str], ids: set[str], timeout: float
) -> dict[str, dict[str, Any]]:
    """Poll the list endpoint until every id in ``ids`` is terminal (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        calls = {c["sessionId"]: c for c in await list_all_calls(client, ORG, headers)}
        live = [i for i in ids if calls.get(i, {}).get("status") not in TERMINAL]
        if not live or time.monotonic() > deadline:
            return calls
        await asyncio.sleep(1.0)


async def run_load(
    args: argparse.Namespace,
    server: ServerProcess,
    sipp: SippUas,
    receiver: WebhookReceiver | None = None,
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as admin:
        headers = await setup_org(admin, server.admin(), FLOW, org_id=ORG)
        body: dict[str, Any] = {
            "to": sipp.uri,
            "mode": args.mode,
            "ringTimeout": 10,
            "maxDuration": 60,
        }
        if receiver is not None:
            body["webhookUrl"] = receiver.url
        # Warm-up (imports, first SQLite writes, caches) before the clock starts.
        warm = []
        for _ in range(WARMUP_CALLS):
            r = await admin.post(
                f"/v1/organizations/{ORG}/flows/{FLOW['id']}/calls", json=body, headers=headers
            )
            r.raise_for_status()
            warm.append(r.json()["sessionId"])
        ok_codes = frozenset({200, 202}) if args.mode == "sync" else frozenset({202})
        await wait_terminal(admin, headers, set(warm), 15)

        driver = Driver(
            server.base_url,
            headers,
            args.connections,
            args.calls_per_conn,
            body,
            args.request_timeout,
            ok_codes,
        )
        driver.open()
        total = int(round(args.rate * args.seconds))
        samples = [Sample(i, 0.0) for i in range(total)]
        tasks: set[asyncio.Task[None]] = set()
        cpu = CpuWindow(server.pid, SERVER_CORE)
        client_cpu = CpuWindow(os.getpid(), LOAD_CORE)  # is the load generator keeping up?
        loop = asyncio.get_running_loop()
        log(f"placing {total} calls at {args.rate}/s over {args.connections} connections")
        spy = PySpy(server.pid, args.profile, args.seconds) if args.profile else None
        if spy is not None:
            spy.start()
        cpu.start()
        client_cpu.start()
        rss_before = server.rss()
        t0 = time.monotonic() + 0.05
        lag_max = 0.0
        for sample in samples:
            # Open loop: due times come from the schedule, never from earlier responses.
            sample.due = due = t0 + sample.index / args.rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.monotonic()
            lag_max = max(lag_max, now - due)
            task = loop.create_task(driver.post(sample, FLOW["id"]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        send_elapsed = time.monotonic() - t0
        if tasks:
            await asyncio.gather(*tasks)
        cpu.stop()
        client_cpu.stop()
        rss_after = server.rss()
        await driver.close()
        metrics = (await admin.get("/metrics")).text
        profile = None
        if spy is not None:
            await asyncio.to_thread(spy.wait)
            profile = profile_summary(spy.raw)
        log(f"all POSTs answered; waiting for {total} calls to end")
        ids = {s.session_id for s in samples if s.session_id}
        calls = await wait_terminal(admin, headers, ids, SETTLE_SECONDS)

    statuses = Counter(calls.get(i, {}).get("status", "missing") for i in ids)
    hangup_by = Counter(calls.get(i, {}).get("hangupBy") for i in ids)
    ok = {200, 202} if args.mode == "sync" else {202}
    api_errors = Counter(s.status for s in samples if s.status not in ok)
    latencies = [s.latency * 1000 for s in samples if s.done]
    service = [s.service * 1000 for s in samples if s.done]
    failed = sum(1 for s in samples if s.status not in ok) + sum(
        n for status, n in statuses.items() if status != "completed"
    )
    errors = [s.error for s in samples if s.error][:5]
    return {
        "placed": total,
        "warmup_calls": WARMUP_CALLS,
        "failed": failed,
        "api_status_errors": {str(k): v for k, v in api_errors.items()},
        "api_error_examples": errors,
        "final_statuses": dict(statuses),
        "hangup_by": {str(k): v for k, v in hangup_by.items()},
        "send_elapsed_s": round(send_elapsed, 3),
        "achieved_rate": round(total / send_elapsed, 1) if send_elapsed > 0 else None,
        "client_lag_max_ms": round(lag_max * 1000, 2),
        "reconnects": driver.reconnects,
        "api_latency_ms": _dist(latencies),
        "api_service_ms": _dist(service),
        "server_side_latency": server_latency(metrics, "POST", "/calls"),
        "server_cpu_pct": round(cpu.cpu_pct, 1),
        "core0_others_pct": round(cpu.others_pct, 1),
        "core0_states_pct": cpu.core_pct,
        "client_cpu_pct": round(client_cpu.cpu_pct, 1),
        "core1_states_pct": client_cpu.core_pct,
        "server_rss_mb": {"before": rss_before / 2**20, "after": rss_after / 2**20},
        "server_cpu_ms_per_call": round(cpu.cpu * 1000 / total, 2),
        "profile": profile,
        "sync": sync_delays(samples) if args.mode == "sync" else None,
        "session_ids": ids,
    }


def _dist(values: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(values, q), 2) for q in (50, 90, 99, 99.9, 100)} | {
        "count": len(values)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=300, help="calls per second")
    parser.add_argument("--seconds", type=float, default=60, help="how long to place calls")
    parser.add_argument(
        "--connections",
        type=int,
        default=None,
        help="HTTP keep-alive connections, one request in flight on each "
        "(default 32; sync mode: enough for every call of ~hold + 1.5 s)",
    )
    parser.add_argument(
        "--mode",
        choices=("poll", "sync", "webhook"),
        default="poll",
        help="the calls' mode; sync also measures the call's end → its 200 response",
    )
    parser.add_argument(
        "--webhooks",
        action="store_true",
        help="give every call a webhookUrl to a local receiver (own process, load core) "
        "and measure event time → first attempt's arrival",
    )
    parser.add_argument(
        "--calls-per-conn",
        type=int,
        default=0,
        help="open a new connection after this many requests on one (0: keep them)",
    )
    parser.add_argument("--hold-ms", type=int, default=1000, help="SIPp hangs up after this")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=10.0,
        help="a POST not answered this long after its due time counts as failed",
    )
    add_server_options(parser, profile_window="while calls are placed")
    args = parser.parse_args(argv)
    if args.connections is None:
        in_flight = args.rate * (args.hold_ms / 1000 + 1.5) if args.mode == "sync" else 0
        args.connections = max(32, int(in_flight) + 32)
    if args.rate <= 0 or args.seconds <= 0 or args.connections < 1:
        parser.error("--rate, --seconds and --connections must be positive")

    pinned = pin_self(LOAD_CORE)
    client_group = None
    if args.nice:
        # A session (so an autogroup) of our own before giving it the weight: the
        # caller's session (a shell and whatever else it runs) keeps its own. Ctrl-C
        # from a terminal no longer reaches us then; SIGTERM/SIGINT by pid still do.
        with contextlib.suppress(OSError):
            os.setsid()
            client_group = autogroup_nice(os.getpid(), args.nice)
    total = int(round(args.rate * args.seconds))
    info: dict[str, Any] = {
        "benchmark": "cps",
        "args": vars(args),
        "machine": machine_info(),
        "client_pinned_to_core1": pinned,
        "client_autogroup_nice": client_group,
    }
    # Each answered call holds an RTP port pair for ~1 s: room for 4 s of calls.
    server = ServerProcess(
        rtp_ports=max(400, int(args.rate * 8)),
        keep=args.keep,
        nice=args.nice,
        # The receiver is on 127.0.0.1, which the SSRF guard refuses by default.
        env={"DIALFLOW_WEBHOOK_ALLOW_PRIVATE": "1"} if args.webhooks else None,
    )
    sipp: SippUas | None = None
    receiver: WebhookReceiver | None = None
    hooks: list[dict[str, Any]] = []
    try:
        if args.webhooks:
            receiver = WebhookReceiver(server.workdir / "webhooks.json").start()
        server.start()
        info["server_autogroup_nice"] = server.autogroup
        info["server_argv"] = server.argv
        sipp = SippUas(
            "uas_answer_bye",
            calls=total + WARMUP_CALLS,
            hold_ms=args.hold_ms,
            # Outlives the run in every case: a SIPp gone early turns into no_answer calls.
            timeout=args.seconds + args.request_timeout + SETTLE_SECONDS + 120,
        ).start()
        info["sipp_argv"] = sipp.argv
        # The load side competes on core 1 the same way: SIPp runs in a session of its
        # own, this process (and the webhook receiver) in the caller's.
        if args.nice and sipp.proc is not None:
            info["sipp_autogroup_nice"] = autogroup_nice(sipp.proc.pid, args.nice)
        info.update(run_loop(run_load(args, server, sipp, receiver)))
        sipp.wait(10)  # -m: it exits once the last call ended
    finally:
        stats = sipp.stop() if sipp is not None else None
        if receiver is not None:
            hooks = receiver.stop()
        info["server_exit"] = server.stop()
    assert stats is not None
    info["sipp"] = {
        "exit_code": stats.exit_code,
        "successful": stats.successful,
        "failed": stats.failed,
        "retransmissions_sent": stats.retransmissions,
        "retrans_by_message": stats.retrans_by_message,
        "failure_reasons": stats.failure_reasons,
        "unexpected": stats.unexpected,
        "dead_call_msgs": stats.dead_call_msgs,
    }
    info["retrans"] = stats.total_retrans
    sessions = set(info.pop("session_ids", ()))
    if args.webhooks:
        info["webhooks"] = webhook_delays(hooks, sessions)
        delay = info["webhooks"]["first_attempt_delay_ms"] or {}
        log(
            f"webhooks: events={info['webhooks']['events']} "
            f"repeats={info['webhooks']['repeated_attempts']} first attempt after the event: "
            f"p50={delay.get('p50')} ms p99={delay.get('p99')} ms max={delay.get('p100')} ms"
        )
    if info.get("sync"):
        delay = info["sync"]["end_to_response_ms"] or {}
        log(
            f"sync: 200={info['sync']['answered_200']} 202={info['sync']['answered_202']} "
            f"end → response p50={delay.get('p50')} ms p99={delay.get('p99')} ms "
            f"max={delay.get('p100')} ms"
        )
    log(
        f"api latency p50={info['api_latency_ms']['p50']} ms; server CPU "
        f"{info['server_cpu_pct']} % = {info['server_cpu_ms_per_call']} ms/call; "
        f"client CPU {info['client_cpu_pct']} %; core 0 others {info['core0_others_pct']} %"
    )
    p99 = info["api_latency_ms"]["p99"]
    write_json(args.json, info)
    rate = f"{args.rate:g}"
    seconds = f"{args.seconds:g}"
    print(
        f"cps: rate={rate} seconds={seconds} placed={info['placed']} failed={info['failed']} "
        f"retrans={info['retrans']} api_p99_ms={p99:.0f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
