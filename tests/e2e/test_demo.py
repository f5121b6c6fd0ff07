"""``dialflow demo`` as a user runs it: one command, a real call, a timeline, exit 0.

The budget is 30 s on the reference machine; the subprocess gets 45 s before the test
fails (a slow CI machine should not turn a working demo into a hang).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

DIALFLOW = Path(sys.executable).with_name("dialflow")


def test_demo_places_a_real_call_and_passes() -> None:
    started = time.monotonic()
    run = subprocess.run(
        [str(DIALFLOW), "demo"],
        capture_output=True,
        text=True,
        timeout=45,
        env={**os.environ, "COLUMNS": "200"},
    )
    elapsed = time.monotonic() - started
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert elapsed < 30, f"demo took {elapsed:.1f} s\n{out}"
    # The setup, then the timeline from both sides of the one call.
    assert "number   7001 -> flow demo-ivr" in out
    assert "Timeline (seconds from answer" in out
    for marker in (
        "INVITE sip:7001@127.0.0.1:",
        "answered (200 OK)",
        '> menu (say) says "Hello. This is a reminder of your appointment tomorrow.',
        'PASS expected "press one to confirm", heard "',
        "sent DTMF 1",
        "received DTMF 1 (rfc4733)",
        'gathered dtmf: "1"',
        '> confirmed (say) says "Your appointment is confirmed.',
        'PASS expected "appointment is confirmed"',
        "flow ends: passed",
        "call completed, hang-up by flow",
    ):
        assert marker in out, f"missing {marker!r}\n{out}"
    # AMD ran on the tester's call; whatever it decided (or could not), it is reported.
    assert re.search(r"^  AMD +(human|machine|fax|unknown|not available)", out, re.M), out
    assert "tester path  hear-menu > press-1 > hear-confirmation > hang-up" in out
    assert "ivr path     menu > choice > route > confirmed" in out
    assert re.search(
        r"Call object  GET http://127\.0\.0\.1:\d+/v1/organizations/demo/calls/c_\w+", out
    ), out
    assert re.search(r"API docs     http://127\.0\.0\.1:\d+/docs", out), out
    assert "demo call PASSED: tester outcome passed" in out
    # No log noise between the lines a user reads.
    assert " INFO " not in out + run.stderr
