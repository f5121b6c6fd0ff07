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
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # after the sys.path set-up: the script runs from anywhere
    LOAD_CORE,
    SERVER_CORE,
    TERMINAL,
    CpuWindow,
    PySpy,
    ServerProcess,
    SippUas,
    add_server_options,
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
            sample.status = r.status_code
            if r.status_code == 202:
                sample.session_id = r.json()["sessionId"]
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
    args: argparse.Namespace, server: ServerProcess, sipp: SippUas
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as admin:
        headers = await setup_org(admin, server.admin(), FLOW, org_id=ORG)
        body = {"to": sipp.uri, "mode": "poll", "ringTimeout": 10, "maxDuration": 60}
        # Warm-up (imports, first SQLite writes, caches) before the clock starts.
        warm = []
        for _ in range(WARMUP_CALLS):
            r = await admin.post(
                f"/v1/organizations/{ORG}/flows/{FLOW['id']}/calls", json=body, headers=headers
            )
            r.raise_for_status()
            warm.append(r.json()["sessionId"])
        await wait_terminal(admin, headers, set(warm), 15)

        driver = Driver(
            server.base_url,
            headers,
            args.connections,
            args.calls_per_conn,
            body,
            args.request_timeout,
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
    api_errors = Counter(s.status for s in samples if s.status != 202)
    latencies = [s.latency * 1000 for s in samples if s.done]
    service = [s.service * 1000 for s in samples if s.done]
    failed = sum(1 for s in samples if s.status != 202) + sum(
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
    }


def _dist(values: list[float]) -> dict[str, float]:
    return {f"p{q}": round(percentile(values, q), 2) for q in (50, 90, 99, 99.9, 100)} | {
        "count": len(values)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=300, help="calls per second")
    parser.add_argument("--seconds", type=float, default=60, help="how long to place calls")
    parser.add_argument("--connections", type=int, default=32, help="HTTP keep-alive connections")
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
    if args.rate <= 0 or args.seconds <= 0 or args.connections < 1:
        parser.error("--rate, --seconds and --connections must be positive")

    pinned = pin_self(LOAD_CORE)
    total = int(round(args.rate * args.seconds))
    info: dict[str, Any] = {
        "benchmark": "cps",
        "args": vars(args),
        "machine": machine_info(),
        "client_pinned_to_core1": pinned,
    }
    # Each answered call holds an RTP port pair for ~1 s: room for 4 s of calls.
    server = ServerProcess(rtp_ports=max(400, int(args.rate * 8)), keep=args.keep, nice=args.nice)
    sipp: SippUas | None = None
    try:
        server.start()
        info["server_argv"] = server.argv
        sipp = SippUas(
            "uas_answer_bye",
            calls=total + WARMUP_CALLS,
            hold_ms=args.hold_ms,
            # Outlives the run in every case: a SIPp gone early turns into no_answer calls.
            timeout=args.seconds + args.request_timeout + SETTLE_SECONDS + 120,
        ).start()
        info["sipp_argv"] = sipp.argv
        info.update(run_loop(run_load(args, server, sipp)))
        sipp.wait(10)  # -m: it exits once the last call ended
    finally:
        stats = sipp.stop() if sipp is not None else None
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
