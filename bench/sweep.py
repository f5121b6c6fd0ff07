"""Concurrent-call sweep: ``concurrent_calls.py`` at several call counts, R runs each.

    flock /tmp/dialflow-bench.lock .venv/bin/python bench/sweep.py \
        --calls 250 500 750 1000 --runs 3 --hold 30 --nice -10 --out /tmp/sweep

Each run is a separate ``bench/concurrent_calls.py`` process (its own server, SIPp and
far ends) writing ``OUT/cc_<calls>_r<run>.json``. The runs are interleaved (run 1 of
every count, then run 2 of every count, ...) so that a slow drift in the machine's
other load spreads over every count instead of biasing one. Options this script does
not know are passed to every run as they are (``--ramp-rate 50``, ``--calls-per-sipp``).
It takes no lock itself (it would deadlock under the ``flock`` above): wrap it.

Then, per call count, the median of the runs with their min and max:

* ``OUT/summary.json``: every run's figures and the median/min/max per count;
* ``OUT/sweep.png`` (``--png``): jitter p50/p99 and server CPU against calls, the
  median as the point and min-max as the error bar (matplotlib, Agg backend);
* on stdout, a markdown table "median (min-max)" to paste into docs/performance.md,
  then one summary line, last:

      sweep: points=4 runs=3 ok=12 failed=0 png=/tmp/sweep/sweep.png

``--resume`` skips the runs whose JSON is already in OUT (a sweep that was interrupted).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONCURRENT = HERE / "concurrent_calls.py"

# (name in summary.json, column title, how to read it from one run's JSON, decimals)
Metric = tuple[str, str, Callable[[dict[str, Any]], float | None], int]


def _get(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def read(data: dict[str, Any]) -> float | None:
        value: Any = data
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    return read


METRICS: tuple[Metric, ...] = (
    ("answered", "answered", _get("answered"), 0),
    ("jitter_p50_ms", "jitter p50 ms", _get("media", "jitter_ms", "p50"), 2),
    ("jitter_p99_ms", "jitter p99 ms", _get("media", "jitter_ms", "p99"), 1),
    ("lost", "lost", _get("media", "lost"), 0),
    ("late", "late", _get("media", "late"), 0),
    ("cpu_pct", "server CPU %", _get("server_cpu_pct"), 0),
    ("cpu_us_per_frame", "CPU µs per call-frame", _get("server_cpu_us_per_frame"), 1),
    ("rss_per_call_kb", "RSS KB/call", _get("rss_per_call_kb"), 0),
    ("dtmf_p99_ms", "DTMF→prompt p99 ms", _get("dtmf", "dtmf_to_prompt_ms", "p99"), 1),
    ("core0_others_pct", "other load on core 0 %", _get("core0_others_pct"), 0),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- running


def run_once(
    calls: int, run: int, out: Path, passthrough: Sequence[str], *, timeout: float
) -> dict[str, Any]:
    """One ``concurrent_calls.py`` run; its JSON, or ``{"error": ...}``."""
    path = out / f"cc_{calls}_r{run}.json"
    argv = [sys.executable, str(CONCURRENT), "--calls", str(calls), *passthrough]
    argv += ["--json", str(path)]
    log(f"run {run}, {calls} calls: {' '.join(argv[1:])}")
    # Its own session: on a timeout it gets SIGINT (it stops its server, SIPp and far
    # ends on the way out) before anything harsher.
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        return {"error": f"timed out after {timeout:.0f} s", "stderr": stderr[-2000:]}
    lines = stdout.strip().splitlines()
    if proc.returncode != 0 or not path.exists():
        return {"error": f"exit {proc.returncode}", "stderr": stderr[-2000:]}
    for line in stderr.splitlines():
        if "dtmf_to_prompt:" in line:
            log(line.split("] ", 1)[-1])
    if lines:
        log(lines[-1])
    data: dict[str, Any] = json.loads(path.read_text())
    data["summary_line"] = lines[-1] if lines else ""
    return data


# --------------------------------------------------------------------------- statistics


def summarise(runs: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per call count: every metric of every good run, and its median/min/max."""
    points = []
    for calls in sorted(runs):
        good = [r for r in runs[calls] if "error" not in r]
        point: dict[str, Any] = {
            "calls": calls,
            "runs": len(runs[calls]),
            "failed_runs": len(runs[calls]) - len(good),
            "summary_lines": [r.get("summary_line", "") for r in good],
        }
        for name, _title, read, _digits in METRICS:
            values = [v for v in (read(r) for r in good) if v is not None]
            point[name] = {
                "values": values,
                "median": statistics.median(values) if values else None,
                "min": min(values) if values else None,
                "max": max(values) if values else None,
            }
        points.append(point)
    return {"points": points}


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per call count, "median (min–max)" per metric (just the value if equal)."""
    head = ["calls", "runs"] + [title for _n, title, _r, _d in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in summary["points"]:
        cells = [str(p["calls"]), str(p["runs"] - p["failed_runs"])]
        for name, _title, _read, digits in METRICS:
            m = p[name]
            med, lo, hi = (_fmt(m[k], digits) for k in ("median", "min", "max"))
            cells.append(med if lo == hi else f"{med} ({lo}–{hi})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- chart


def plot(
    summary: dict[str, Any], path: Path, title: str = "", jitter_target: float | None = 5.0
) -> None:
    """Jitter p50/p99 and server CPU against concurrent calls (median, min-max bars)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    points = summary["points"]

    def series(name: str) -> tuple[list[int], list[float], list[list[float]]]:
        xs: list[int] = []
        ys: list[float] = []
        low: list[float] = []
        high: list[float] = []
        for p in points:
            m = p[name]
            if m["median"] is None:
                continue
            xs.append(p["calls"])
            ys.append(m["median"])
            low.append(m["median"] - m["min"])
            high.append(m["max"] - m["median"])
        return xs, ys, [low, high]

    fig, (ax_jit, ax_cpu) = plt.subplots(2, 1, sharex=True, figsize=(7, 7), dpi=120)
    for name, label, fmt in (
        ("jitter_p99_ms", "jitter p99", "o-"),
        ("jitter_p50_ms", "jitter p50", "s--"),
    ):
        xs, ys, err = series(name)
        ax_jit.errorbar(xs, ys, yerr=err, fmt=fmt, capsize=4, label=label)
    if jitter_target is not None:
        ax_jit.axhline(jitter_target, color="grey", linestyle=":", linewidth=1)
        ax_jit.annotate(
            f"target p99 {jitter_target:g} ms",
            (0.99, jitter_target),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=8,
            color="grey",
        )
    ax_jit.set_ylabel("send-interval jitter at the far end (ms)")
    # p50 is ~0.3 ms and an overloaded p99 tens of ms: log, unless a value is 0.
    jitters = [p[n]["min"] for p in points for n in ("jitter_p50_ms", "jitter_p99_ms")]
    if all(v is None or v > 0 for v in jitters):
        ax_jit.set_yscale("log")
        ax_jit.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax_jit.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax_jit.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax_jit.grid(True, which="both", alpha=0.3)
    ax_jit.legend(loc="upper left")

    xs, ys, err = series("cpu_pct")
    ax_cpu.errorbar(xs, ys, yerr=err, fmt="o-", capsize=4, color="tab:red", label="server CPU")
    ax_cpu.axhline(100, color="grey", linestyle=":", linewidth=1)
    ax_cpu.set_ylabel("server CPU (% of one core)")
    ax_cpu.set_xlabel("concurrent calls")
    ax_cpu.set_ylim(bottom=0)
    ax_cpu.grid(True, alpha=0.3)
    ax_cpu.legend(loc="upper left")
    ax_cpu.set_xticks([p["calls"] for p in points])

    runs = max((p["runs"] - p["failed_runs"] for p in points), default=0)
    what = f"median of {runs} runs, bars min-max" if runs > 1 else "one run"
    fig.suptitle(title or f"concurrent_calls.py: {what}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Other options are passed to every concurrent_calls.py run.",
    )
    parser.add_argument(
        "--calls", type=int, nargs="+", default=[250, 500, 750, 1000], help="call counts"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per call count")
    parser.add_argument("--hold", type=float, default=30, help="measured seconds per run")
    parser.add_argument("--nice", type=int, default=0, help="server nice value (e.g. -10)")
    parser.add_argument(
        "--out", type=Path, default=None, help="directory for the JSONs (default ./sweep-<time>)"
    )
    parser.add_argument("--png", type=Path, default=None, help="chart (default OUT/sweep.png)")
    parser.add_argument("--title", default="", help="chart title")
    parser.add_argument(
        "--jitter-target", type=float, default=5.0, help="dotted line on the jitter panel (ms)"
    )
    parser.add_argument("--cooldown", type=float, default=5.0, help="seconds between runs")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in OUT")
    args, passthrough = parser.parse_known_args(argv)
    if args.runs < 1 or not args.calls or min(args.calls) < 1 or args.hold <= 0:
        parser.error("--calls, --runs and --hold must be positive")
    if "--json" in passthrough:
        parser.error("--json is per run: use --out")

    out: Path = args.out or Path(f"sweep-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    png: Path = args.png or out / "sweep.png"
    forward = [*passthrough, "--hold", str(args.hold), "--nice", str(args.nice)]
    calls_list = sorted(set(args.calls))
    runs: dict[int, list[dict[str, Any]]] = {c: [] for c in calls_list}
    first = True
    for run in range(1, args.runs + 1):
        for calls in calls_list:
            path = out / f"cc_{calls}_r{run}.json"
            if args.resume and path.exists():
                data = json.loads(path.read_text())
                data.setdefault("summary_line", "")
                runs[calls].append(data)
                continue
            if not first:
                time.sleep(args.cooldown)  # the previous server's sockets and RAM go away
            first = False
            # Ramp and hang-up take ~calls/ramp-rate each, set-up and wind-down < 1 min.
            timeout = args.hold + calls / 10 + 300
            runs[calls].append(run_once(calls, run, out, forward, timeout=timeout))
            if "error" in runs[calls][-1]:
                log(f"run {run}, {calls} calls FAILED: {runs[calls][-1]['error']}")

    summary = summarise(runs)
    summary["args"] = {**vars(args), "out": str(out), "png": str(png), "passthrough": forward}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    plot(summary, png, args.title, args.jitter_target)
    ok = sum(p["runs"] - p["failed_runs"] for p in summary["points"])
    failed = sum(p["failed_runs"] for p in summary["points"])
    print(markdown_table(summary))
    print(
        f"sweep: points={len(calls_list)} runs={args.runs} ok={ok} failed={failed} png={png}",
        flush=True,
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
