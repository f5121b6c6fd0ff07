"""Smoke runs of the load benchmarks (``bench/cps.py``, ``bench/concurrent_calls.py``).

Each benchmark starts a real ``dialflow serve`` and SIPp, so these are interop tests.
They only prove the harness works end to end: exit status 0 and a last stdout line in
the exact summary format (the figures themselves are for docs/performance.md, not for
assertions on a shared machine).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

BENCH = Path(__file__).resolve().parents[2] / "bench"

CPS_LINE = re.compile(
    r"^cps: rate=\d+(\.\d+)? seconds=\d+(\.\d+)? placed=\d+ failed=\d+ retrans=\d+"
    r" api_p99_ms=\d+$"
)
CONCURRENT_LINE = re.compile(
    r"^concurrent_calls: calls=\d+ answered=\d+ jitter_p99_ms=(\d+\.\d|nan) lost=\d+"
    r" late=\d+ cpu_pct=\d+ rss_per_call_kb=-?\d+$"
)


def _need_sipp() -> None:
    if shutil.which("sipp") is None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("sipp is not installed [CI is set, so this is an error]", pytrace=False)
        pytest.skip("sipp is not installed (run scripts/install-system-deps.sh as root)")


def _run(script: str, *args: str, timeout: float) -> str:
    _need_sipp()
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing\n{proc.stderr[-3000:]}"
    return lines[-1]


def test_cps_smoke(tmp_path: Path) -> None:
    out = tmp_path / "cps.json"
    line = _run("cps.py", "--rate", "5", "--seconds", "2", "--json", str(out), timeout=90)
    assert CPS_LINE.match(line), line
    assert line.startswith("cps: rate=5 seconds=2 placed=10 ")
    assert out.exists()


def test_concurrent_calls_smoke(tmp_path: Path) -> None:
    out = tmp_path / "concurrent.json"
    line = _run(
        "concurrent_calls.py", "--calls", "5", "--hold", "2", "--json", str(out), timeout=120
    )
    assert CONCURRENT_LINE.match(line), line
    assert line.startswith("concurrent_calls: calls=5 ")
    assert out.exists()
