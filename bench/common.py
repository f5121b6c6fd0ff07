"""Shared helpers for the load benchmarks (``cps.py``, ``concurrent_calls.py``).

What lives here:

* CPU pinning (``taskset``/``sched_setaffinity``): the server runs alone on core 0,
  every load generator and far end on core 1 (the issue's set-up);
* :class:`ServerProcess`: a real ``dialflow serve`` subprocess on free loopback ports,
  a temporary data directory and a known admin token, with its CPU time and RSS read
  from ``/proc/<pid>``;
* :class:`SippUas`: one SIPp UAS process on a benchmark scenario, with its statistics
  (``-trace_stat``) and per-message counts (``-trace_counts``, retransmissions) parsed;
* :func:`setup_org`: organization + API key + flow through the HTTP API;
* small statistics (:func:`percentile`) and output helpers (:func:`write_json`).

Nothing here talks to anything but 127.0.0.1. Every process started here is stopped by
``stop()`` / the context managers, and every one of them has its own time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCENARIOS = HERE / "scenarios"
HOST = "127.0.0.1"
SERVER_CORE = 0
LOAD_CORE = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TERMINAL = frozenset({"completed", "busy", "no_answer", "failed", "canceled"})


# --------------------------------------------------------------------------- CPU pinning


# Taken at import, before pin_self() narrows this process to one core: the server is
# still placed on core 0 by taskset after the driver pinned itself to core 1.
_CORES = frozenset(os.sched_getaffinity(0))


def cores_available() -> frozenset[int]:
    """CPUs this process could run on when it started."""
    return _CORES


def taskset(core: int | None) -> list[str]:
    """A ``taskset -c CORE`` prefix, or nothing when the core or taskset is missing."""
    if core is None or core not in cores_available() or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(core)]


def pin_self(core: int | None) -> bool:
    """Move this process (and its future children) to ``core``; False if impossible."""
    if core is None or core not in cores_available():
        return False
    os.sched_setaffinity(0, {core})
    return True


# --------------------------------------------------------------------------- ports

_handed_out: set[int] = set()


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, span: int = 1, tcp: bool = False, low: int = 20000, high: int = 32000) -> int:
    """A port ``p`` with ``p .. p+span-1`` free on 127.0.0.1 (UDP, and TCP if asked).

    Drawn below the ephemeral range (32768+) so that outgoing sockets do not take it
    between this check and the bind; never the same block twice in one process.
    """
    rng = random.SystemRandom()
    for _ in range(2000):
        base = rng.randrange(low, high - span, 2)
        ports = range(base, base + span)
        if any(p in _handed_out for p in ports):
            continue
        if all(_bindable(p, socket.SOCK_DGRAM) for p in ports) and (
            not tcp or all(_bindable(p, socket.SOCK_STREAM) for p in ports)
        ):
            _handed_out.update(ports)
            return base
    raise RuntimeError("no free port block found")


def udp_drops(ports: Iterable[int]) -> int:
    """Datagrams the kernel dropped (receive buffer full) on the given local UDP ports."""
    wanted = set(ports)
    total = 0
    with contextlib.suppress(OSError), open("/proc/net/udp") as f:
        next(f, None)
        for line in f:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) in wanted:
                total += int(cols[-1])
    return total


# --------------------------------------------------------------------------- /proc


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def core_times(core: int) -> dict[str, float]:
    """One CPU's time per state so far (``/proc/stat``), in seconds."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                values = [int(x) / CLK_TCK for x in line.split()[1:9]]
                return dict(zip(_CPU_FIELDS, values, strict=True))
    return dict.fromkeys(_CPU_FIELDS, 0.0)


def core_busy_seconds(core: int) -> float:
    """Non-idle time of one CPU so far: with the process's own time, shows other load."""
    t = core_times(core)
    return sum(t.values()) - t["idle"] - t["iowait"]


@dataclass(slots=True)
class CpuWindow:
    """CPU use of one process and of its core between ``start()`` and ``stop()``."""

    pid: int
    core: int | None = SERVER_CORE
    wall: float = 0.0
    cpu: float = 0.0
    core_busy: float = 0.0
    core_pct: dict[str, float] = field(default_factory=dict)  # the core's states, % of wall
    _t0: float = 0.0
    _c0: float = 0.0
    _k0: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = proc_cpu_seconds(self.pid)
        if self.core is not None:
            self._k0 = core_times(self.core)

    def stop(self) -> None:
        self.wall = time.monotonic() - self._t0
        self.cpu = proc_cpu_seconds(self.pid) - self._c0
        if self.core is not None and self.wall > 0:
            k1 = core_times(self.core)
            delta = {k: k1[k] - self._k0.get(k, 0.0) for k in k1}
            self.core_busy = sum(delta.values()) - delta["idle"] - delta["iowait"]
            self.core_pct = {k: round(100 * v / self.wall, 1) for k, v in delta.items()}

    @property
    def cpu_pct(self) -> float:
        """The process's CPU over the window, in % of one core."""
        return 100.0 * self.cpu / self.wall if self.wall > 0 else 0.0

    @property
    def others_pct(self) -> float:
        """What everything else ran on the same core meanwhile (noise from other jobs)."""
        if self.wall <= 0:
            return 0.0
        return max(0.0, 100.0 * (self.core_busy - self.cpu) / self.wall)


def source_tree() -> dict[str, str]:
    """Git HEAD and a digest of uncommitted changes under src/ (the code measured)."""
    import hashlib

    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout
        return ""

    diff = git("diff", "HEAD", "--", "src")
    return {
        "head": git("rev-parse", "--short", "HEAD").strip(),
        "src_diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else "",
    }


def machine_info() -> dict[str, Any]:
    """CPU model, core count, load average, kernel and Python: for the JSON reports."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "tree": source_tree(),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
    }


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100, nearest rank); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def write_json(path: str | Path | None, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON (no-op when ``path`` is None)."""
    if path is None:
        return
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the summary line)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- command line

_T = TypeVar("_T")


def add_server_options(parser: argparse.ArgumentParser, *, profile_window: str) -> None:
    """Add the options every server benchmark takes: ``--json``, ``--profile`` (py-spy
    over ``profile_window``), ``--keep`` and ``--nice``."""
    parser.add_argument("--json", metavar="OUT", help="write the details as JSON")
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help=f"py-spy the server {profile_window}: PREFIX.txt (collapsed stacks)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the server's temp dir")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the server at this nice value (e.g. -10 on a shared machine; needs root)",
    )


def run_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """Run ``main`` on uvloop when it is installed (as the server does), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main)
    return uvloop.run(main)


# --------------------------------------------------------------------------- the server


def _dialflow_argv() -> list[str]:
    script = Path(sys.executable).with_name("dialflow")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from dialflow.cli import main; sys.exit(main())"]


# Injected with --diag through PYTHONPATH (sitecustomize runs at interpreter start):
# logs every garbage collection over 2 ms, and event-loop stalls seen by a watchdog
# thread that pings the loop every 10 ms. Diagnostic only: it changes nothing in the
# server's code, and costs one thread wake-up per 10 ms.
_DIAG_SITECUSTOMIZE = r"""
import asyncio, gc, json, os, threading, time

_path = os.environ["DIALFLOW_BENCH_DIAG"]
_out = open(_path, "a", buffering=1)
_gc_start = [0.0]

def _gc_cb(phase, info):
    if phase == "start":
        _gc_start[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _gc_start[0]) * 1000
    if ms >= 2.0:
        _out.write(json.dumps({"t": time.monotonic(), "gc_ms": round(ms, 2),
                               "gen": info["generation"], "collected": info["collected"]}) + "\n")

gc.callbacks.append(_gc_cb)

def _watch(loop):
    while not loop.is_closed():
        t0 = time.monotonic()
        done = threading.Event()
        try:
            loop.call_soon_threadsafe(done.set)
        except RuntimeError:
            return
        done.wait()
        lag = (time.monotonic() - t0) * 1000
        if lag >= 15.0:
            _out.write(json.dumps({"t": t0, "loop_lag_ms": round(lag, 2)}) + "\n")
        t1 = time.monotonic()
        time.sleep(0.01)
        # Over-sleeping means this thread could not run: the process was off the CPU
        # (other processes on the core) or another thread held the GIL.
        over = (time.monotonic() - t1) * 1000 - 10.0
        if over >= 15.0:
            _out.write(json.dumps({"t": t1, "oversleep_ms": round(over, 2)}) + "\n")

_orig_run = asyncio.Runner.run if hasattr(asyncio, "Runner") else None

def _run(self, coro, *, context=None):
    loop = self.get_loop()
    threading.Thread(target=_watch, args=(loop,), daemon=True, name="bench-diag").start()
    return _orig_run(self, coro, context=context)

if _orig_run is not None:
    asyncio.Runner.run = _run
"""


def autogroup_nice(pid: int, nice: int) -> str | None:
    """Give the server's autogroup the ``--nice`` weight too; its autogroup line after.

    With ``kernel.sched_autogroup_enabled`` (the default on most distributions) a nice
    value only ranks processes inside their own autogroup (session), and the server
    runs in a session of its own: against a niced job of another session it got an
    equal share of core 0 whatever its nice (a 300/s run saw 18 % user time for the
    server and 76 % for a nice-19 job).
    """
    path = Path(f"/proc/{pid}/autogroup")
    if nice:
        try:
            path.write_text(str(nice))
        except OSError as exc:
            log(f"cannot set the server's autogroup nice ({exc}); --nice is per session only")
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    return None


class ServerProcess:
    """``dialflow serve`` in a subprocess pinned to ``core``, on free loopback ports.

    Data go to a temporary directory that ``stop()`` removes (unless ``keep``). The
    admin token is chosen here (``DIALFLOW_ADMIN_TOKEN``) so no output needs parsing.
    """

    def __init__(
        self,
        *,
        core: int | None = SERVER_CORE,
        rtp_ports: int = 2000,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        keep: bool = False,
        nice: int = 0,
        diag: bool = False,
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dialflow-bench-"))
        self.diag_path: Path | None = None
        self.keep = keep
        self.nice = nice
        self.autogroup: str | None = None
        self.port = free_port(tcp=True)
        self.sip_port = free_port(tcp=True)
        span = max(100, rtp_ports)
        self.rtp_low = free_port(span=1, low=10000, high=32000 - span)
        self.rtp_high = self.rtp_low + span
        self.admin_token = "adm_bench_" + secrets.token_hex(8)
        self.base_url = f"http://{HOST}:{self.port}"
        self.argv = [
            *(["nice", "-n", str(nice)] if nice else []),
            *taskset(core),
            *_dialflow_argv(),
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--sip-host",
            HOST,
            "--sip-port",
            str(self.sip_port),
            "--rtp-ports",
            f"{self.rtp_low}-{self.rtp_high}",
            "--data-dir",
            str(self.workdir / "data"),
            *extra_args,
        ]
        self.env = {
            **os.environ,
            "DIALFLOW_ADMIN_TOKEN": self.admin_token,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        if diag:
            site = self.workdir / "diag"
            site.mkdir()
            (site / "sitecustomize.py").write_text(_DIAG_SITECUSTOMIZE)
            self.diag_path = self.workdir / "diag.jsonl"
            self.env["DIALFLOW_BENCH_DIAG"] = str(self.diag_path)
            self.env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(site), self.env.get("PYTHONPATH", "")) if p
            )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: io.BufferedWriter | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def start(self, timeout: float = 30.0) -> Self:
        """Launch and wait for ``/healthz`` to answer 200."""
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.autogroup = autogroup_nice(self.proc.pid, self.nice) if self.nice else None
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dialflow serve exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/healthz").status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"dialflow serve did not start:\n{self.log_tail()}")
                time.sleep(0.1)

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def diag_events(self, since: float = 0.0, until: float = math.inf) -> list[dict[str, Any]]:
        """The ``--diag`` records (GC pauses, loop stalls) with ``since <= t < until``."""
        if self.diag_path is None or not self.diag_path.exists():
            return []
        out = []
        for line in self.diag_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if since <= rec["t"] < until:
                    out.append(rec)
        return out

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss(self) -> int:
        return proc_rss_bytes(self.pid)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful: live calls are hung up), then SIGKILL; returns the exit code."""
        code: int | None = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            code = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            log(f"server log tail:\n{self.log_tail()}")
        self.stop()


async def setup_org(
    client: httpx.AsyncClient,
    admin: Mapping[str, str],
    flow: Mapping[str, Any],
    *,
    org_id: str = "bench",
    max_concurrent_calls: int = 5000,
    calls_per_second: float = 1000,
) -> dict[str, str]:
    """Create the organization (high limits), an API key and ``flow``; the key's headers."""
    r = await client.post(
        "/v1/organizations",
        json={
            "id": org_id,
            "name": "Benchmark",
            "maxConcurrentCalls": max_concurrent_calls,
            "callsPerSecond": calls_per_second,
        },
        headers=dict(admin),
    )
    r.raise_for_status()
    r = await client.post(
        f"/v1/organizations/{org_id}/api-keys", json={"name": "bench"}, headers=dict(admin)
    )
    r.raise_for_status()
    headers = {"Authorization": f"Bearer {r.json()['key']}"}
    r = await client.post(f"/v1/organizations/{org_id}/flows", json=dict(flow), headers=headers)
    if r.status_code != 201:
        raise RuntimeError(f"flow refused: {r.status_code} {r.text}")
    return headers


async def list_all_calls(
    client: httpx.AsyncClient, org_id: str, headers: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Every call of the organization (the list endpoint, 1000 per page)."""
    calls: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(
            f"/v1/organizations/{org_id}/calls", params=params, headers=dict(headers)
        )
        r.raise_for_status()
        body = r.json()
        calls.extend(body["data"])
        cursor = body.get("nextCursor")
        if not cursor:
            return calls


def server_latency(metrics_text: str, method: str, route_end: str) -> dict[str, Any]:
    """The server's own view of a route's latency (its Prometheus histogram).

    Bucket counts are summed over status codes; the percentiles are the upper bounds
    of the buckets they fall in (the histogram's resolution), in milliseconds.
    """
    buckets: dict[float, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("dialflow_api_request_duration_seconds_bucket{"):
            continue
        labels, _, value = line.partition("} ")
        if f'method="{method}"' not in labels or not re.search(
            rf'route="[^"]*{re.escape(route_end)}"', labels
        ):
            continue
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        bound = math.inf if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + float(value)
    if not buckets or not buckets.get(math.inf):
        return {}
    total = buckets[math.inf]
    bounds = sorted(buckets)

    def upper(q: float) -> float | None:
        for b in bounds:
            if buckets[b] >= q / 100.0 * total:
                return None if b == math.inf else b * 1000
        return None

    within_50 = buckets.get(0.05, 0.0)
    return {
        "count": int(total),
        "p50_le_ms": upper(50),
        "p99_le_ms": upper(99),
        "within_50ms_pct": round(100.0 * within_50 / total, 2),
    }


# --------------------------------------------------------------------------- SIPp


def _parse_csv_last_row(text: str) -> dict[str, str]:
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=";") if r]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _int(value: str | None) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


@dataclass(slots=True)
class SippStats:
    """What one SIPp run reports: calls, failures and SIP retransmissions."""

    exit_code: int | None
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0  # -trace_stat Retransmissions(C): what SIPp itself resent
    retrans_by_message: dict[str, int] = field(default_factory=dict)  # -trace_counts
    failure_reasons: dict[str, int] = field(default_factory=dict)
    unexpected: int = 0
    dead_call_msgs: int = 0  # messages for calls SIPp had already forgotten
    out_of_call_msgs: int = 0

    @property
    def total_retrans(self) -> int:
        """Retransmissions seen in either direction (SIPp's own, and received duplicates)."""
        return max(self.retransmissions, sum(self.retrans_by_message.values()))


class SippUas:
    """One SIPp UAS process on a scenario of ``bench/scenarios`` pinned to ``core``.

    ``keys`` become ``-key name value`` (used as ``[name]`` in the scenario);
    ``calls`` (``-m``) makes SIPp exit once that many calls ended; ``timeout`` bounds
    its life in any case.
    """

    def __init__(
        self,
        scenario: str,
        *,
        calls: int,
        timeout: float,
        core: int | None = LOAD_CORE,
        hold_ms: int = 1000,
        keys: Mapping[str, str] | None = None,
        buff_size: int = 4 * 1024 * 1024,
        extra_args: Sequence[str] = (),
    ) -> None:
        if shutil.which("sipp") is None:
            raise RuntimeError("sipp is not installed")
        path = SCENARIOS / (scenario if scenario.endswith(".xml") else f"{scenario}.xml")
        self.workdir = Path(tempfile.mkdtemp(prefix="sipp-bench-"))
        self.port = free_port()
        self.media_port = free_port(span=4)  # SIPp binds -mp (and -mp+2)
        self.argv = [
            *taskset(core),
            "sipp",
            "-sf",
            str(path),
            "-i",
            HOST,
            "-p",
            str(self.port),
            "-bind_local",
            "-mi",
            HOST,
            "-mp",
            str(self.media_port),
            "-m",
            str(calls),
            "-d",
            str(hold_ms),
            "-buff_size",
            str(buff_size),
            "-aa",
            "-nostdin",
            "-timeout",
            f"{int(math.ceil(timeout))}s",
            "-trace_stat",
            "-fd",
            "1",
            "-trace_counts",
            "-trace_err",
            "-max_recv_loops",
            "10000",
            *extra_args,
        ]
        for k, v in (keys or {}).items():
            self.argv += ["-key", k, str(v)]
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: io.BufferedWriter | None = None

    @property
    def uri(self) -> str:
        return f"sip:bench@{HOST}:{self.port}"

    def start(self) -> Self:
        self._out = open(self.workdir / "stdout.txt", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 5
        while _bindable(self.port, socket.SOCK_DGRAM) and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited: {self.stdout_tail()}")
            time.sleep(0.02)
        return self

    def stdout_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "stdout.txt").read_text(errors="replace")[-chars:]
        return ""

    def wait(self, timeout: float) -> int | None:
        """Wait for SIPp to exit by itself (``-m`` calls done); None on timeout."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> SippStats:
        """Stop SIPp if still running (SIGUSR1: quit after the current calls, then kill)."""
        code: int | None = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGUSR1)
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            code = self.proc.returncode
        if self._out is not None:
            self._out.close()
            self._out = None
        stats = self.stats(code)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return stats

    def _read(self, pattern: str) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.workdir.glob(pattern))

    def stats(self, code: int | None) -> SippStats:
        pid = self.proc.pid if self.proc is not None else 0
        stat = _parse_csv_last_row(self._read(f"*_{pid}_.csv"))
        counts = _parse_csv_last_row(self._read(f"*_{pid}_counts.csv"))
        retrans = {k: _int(v) for k, v in counts.items() if k.endswith("_Retrans") and _int(v) > 0}
        unexpected = sum(_int(v) for k, v in counts.items() if k.endswith("_Unexp"))
        reasons = {
            k[:-3]: _int(v)
            for k, v in stat.items()
            if k.startswith("Failed") and not k.startswith("FailedCall(") and k.endswith("(C)")
            if _int(v)
        }
        return SippStats(
            exit_code=code,
            successful=_int(stat.get("SuccessfulCall(C)")),
            failed=_int(stat.get("FailedCall(C)")),
            retransmissions=_int(stat.get("Retransmissions(C)")),
            retrans_by_message=retrans,
            failure_reasons=reasons,
            unexpected=unexpected,
            dead_call_msgs=_int(stat.get("DeadCallMsgs(C)")),
            out_of_call_msgs=_int(stat.get("OutOfCallMsgs(C)")),
        )


def diag_summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    """GC pauses by generation and event-loop stalls from ``ServerProcess.diag_events``."""
    gcs = [e for e in events if "gc_ms" in e]
    lags = [e["loop_lag_ms"] for e in events if "loop_lag_ms" in e]
    overs = [e["oversleep_ms"] for e in events if "oversleep_ms" in e]
    by_gen: dict[str, Any] = {}
    for gen in sorted({e["gen"] for e in gcs}):
        ms = [e["gc_ms"] for e in gcs if e["gen"] == gen]
        by_gen[str(gen)] = {"count": len(ms), "max_ms": max(ms), "total_ms": round(sum(ms), 1)}
    return {
        "gc_over_2ms": by_gen,
        "loop_stalls_over_15ms": {
            "count": len(lags),
            "max_ms": max(lags) if lags else 0.0,
            "p50_ms": percentile(lags, 50) if lags else 0.0,
        },
        "thread_oversleep_over_15ms": {"count": len(overs), "max_ms": max(overs, default=0.0)},
        "events": sorted(events, key=lambda e: -max(e.get(k, 0) for k in _DIAG_KEYS))[:10],
    }


_DIAG_KEYS = ("gc_ms", "loop_lag_ms", "oversleep_ms")


# --------------------------------------------------------------------------- profiling


class PySpy:
    """``py-spy record`` of the server over a window, run from the load core.

    Default (blocking) sampling at a modest rate: each sample pauses the server for a
    few tens of µs, which is negligible at 100 Hz, while the non-blocking mode reads
    torn stacks under this load. ``--threads`` roots every stack at its thread, so
    :func:`profile_summary` can separate the event loop from the SQLite writer thread
    and from idle pool threads.
    """

    def __init__(self, pid: int, prefix: str | Path, duration: float, rate: int = 100) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.raw = Path(f"{prefix}.txt")
        self.svg = Path(f"{prefix}.svg")
        self.argv = [
            *taskset(LOAD_CORE),
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--threads",
            "--duration",
            str(max(1, int(duration))),
            "--format",
            "raw",
            "-o",
            str(self.raw),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def wait(self, timeout: float = 60.0) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(Exception):
            flamegraph(self.raw, self.svg)


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "run_slot (dialflow/media/clock.py:247)"; drop the line.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


# Leaf frames of a thread that waits: not work. ``Runner.run`` as a leaf is the event
# loop inside uvloop's C code: waiting in epoll *or* doing C-level work (reading
# datagrams, timers), which py-spy cannot tell apart; it is reported on its own.
_IDLE_LEAVES = (
    "Condition.wait",
    "Event.wait",
    "Queue.get",
    "select",
    "_worker",
    "WriterThread._main",  # blocked in SimpleQueue.get (C, no frame of its own)
)
_LOOP_LEAF = "Runner.run"


def profile_summary(raw: Path, top: int = 20) -> dict[str, Any]:
    """Per-thread busy share and the event loop's top functions from py-spy's stacks.

    Percentages of the main thread are of its samples (i.e. of wall time at the
    sampling rate); ``loop_c_or_idle_pct`` is the share with no Python frame running.
    """
    threads: dict[str, dict[str, int]] = {}
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    main_total = 0
    with open(raw) as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            parts = stack.split(";")
            thread = parts[0].split(": ", 1)[-1]
            frames = [_frame_name(fr) for fr in parts[1:]]
            if not frames:
                continue
            leaf = frames[-1]
            t = threads.setdefault(thread, {"samples": 0, "idle": 0})
            t["samples"] += count
            if leaf.startswith(_IDLE_LEAVES):
                t["idle"] += count
            if thread != "MainThread":
                continue
            main_total += count
            self_counts[leaf] = self_counts.get(leaf, 0) + count
            for name in set(frames):
                incl_counts[name] = incl_counts.get(name, 0) + count

    def ranked(counts: dict[str, int]) -> list[tuple[str, float]]:
        best = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [(name, round(100.0 * n / max(1, main_total), 1)) for name, n in best]

    loop_leaf = sum(n for name, n in self_counts.items() if name.startswith(_LOOP_LEAF))
    busy_threads = {
        name: round(100.0 * (t["samples"] - t["idle"]) / max(1, main_total), 1)
        for name, t in threads.items()
        if t["samples"] > t["idle"]
    }
    return {
        "main_samples": main_total,
        "loop_c_or_idle_pct": round(100.0 * loop_leaf / max(1, main_total), 1),
        "threads_busy_pct": busy_threads,
        "self_pct": ranked(self_counts),
        "inclusive_pct": ranked(incl_counts),
    }


def flamegraph(raw: Path, svg: Path) -> None:
    """A flame graph SVG from collapsed stacks, if ``flamegraph.pl``/inferno is around.

    py-spy writes SVG itself only in ``--format flamegraph``; running a second sampler
    would double the overhead, so this converts the raw file when a tool exists.
    """
    tool = shutil.which("inferno-flamegraph") or shutil.which("flamegraph.pl")
    if tool is None:
        return
    with open(raw, "rb") as src, open(svg, "wb") as dst:
        subprocess.run([tool], stdin=src, stdout=dst, check=False, timeout=60)
