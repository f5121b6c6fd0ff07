"""``dialflow test`` end to end: the example suites under examples/, run by the real CLI
(``.venv/bin/dialflow test ... --embedded --junit``) as a subprocess, with real calls.

The failing-assertion suite has one passing and one failing test: exit 1, and the JUnit
report, parsed back, has one testcase per test, the failure with the expected phrase
and what was heard, and the session ids. The appointment-reminder suite passes: exit 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DIALFLOW = Path(sys.executable).with_name("dialflow")
SESSION = re.compile(r"^c_[A-Za-z0-9]{22}$")


def _dialflow(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    env.pop("DIALFLOW_TOKEN", None)
    return subprocess.run(
        [str(DIALFLOW), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def _cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def test_failing_assertion_suite_exits_1_and_reports_junit(tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.xml"
    run = _dialflow(
        "test",
        str(EXAMPLES / "failing-assertion" / "suite.yaml"),
        "--embedded",
        "--junit",
        str(report),
        # One call at a time (overrides the suite's concurrency): the recognizer has one
        # worker, and on a busy machine two listening calls at once can fall behind.
        "--concurrency",
        "1",
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed, 1 failed, 0 errors" in run.stdout, run.stdout

    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert suite.attrib["name"] == "failing-assertion"
    assert (suite.attrib["tests"], suite.attrib["failures"], suite.attrib["errors"]) == (
        "2",
        "1",
        "0",
    )
    cases = _cases(suite)
    assert set(cases) == {"says the opening hours", "offers an operator"}
    for case in cases.values():
        assert case.attrib["classname"] == "failing-assertion"
        assert 0.5 < float(case.attrib["time"]) < 30
        [prop] = case.findall("properties/property")
        assert prop.attrib["name"] == "sessionId" and SESSION.match(prop.attrib["value"])
        out = case.findtext("system-out") or ""
        assert f"session: {prop.attrib['value']}" in out
        assert "timeline (seconds from answer):" in out
        assert "far end: session c_" in out and "flow hours-ivr" in out

    passed = cases["says the opening hours"]
    assert passed.find("failure") is None and passed.find("error") is None
    assert 'PASS hear-hours: expected "open from nine to five"' in (
        passed.findtext("system-out") or ""
    )

    failed = cases["offers an operator"]
    assert failed.find("error") is None
    failure = failed.find("failure")
    assert failure is not None
    assert failure.attrib["type"] == "ExpectationFailed"
    message = failure.attrib["message"]
    assert message.startswith("flow.outcome: expected passed, got failed; ")
    assert 'assertion hear-operator: expected "press zero for an operator", heard "' in message
    text = failure.text or ""
    heard = re.search(r'heard    "([^"]*)"', text)
    assert heard is not None, text
    # The line says its hours: the tester heard *something*, and it is in the report.
    assert len(heard.group(1).split()) >= 3, text
    assert "monday" in heard.group(1) or "friday" in heard.group(1) or "calling" in heard.group(1)
    session = failed.find("properties/property")
    assert session is not None and f"Session: {session.attrib['value']}" in text
    out = failed.findtext("system-out") or ""
    assert 'FAIL expected "press zero for an operator"' in out


def test_appointment_reminder_suite_passes(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    run = _dialflow(
        "test",
        str(EXAMPLES / "appointment-reminder" / "suite.yaml"),
        "--embedded",
        "--junit",
        str(report),
        "--no-progress",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    root = ET.parse(report).getroot()
    assert root.attrib["failures"] == "0" and root.attrib["errors"] == "0"
    cases = _cases(root)
    assert set(cases) == {"confirms with 1", "cancels with 2"}
    assert all(c.find("failure") is None for c in cases.values())
    confirm_out = cases["confirms with 1"].findtext("system-out") or ""
    assert "amd: machine" in confirm_out  # expect.amdResult turned AMD on
    assert "received DTMF 1" in confirm_out  # the IVR's side of the timeline


def test_invalid_suite_exits_2_with_paths(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "org: acme\n"
        "flows: [missing.yaml]\n"
        "tests:\n"
        "  - {name: a, flow: t, to: 'sip:1@{host}', expect: {flowOutcome: pass}}\n"
    )
    run = _dialflow("test", str(suite), "--embedded", timeout=30)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "tests.0.to: unknown placeholder {host}" in run.stdout
    assert "tests.0.expect.flowOutcome:" in run.stdout
