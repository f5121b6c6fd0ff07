"""JUnit XML from a report: parsed back, counts, failure and error elements, sessions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialflow.testing.junit import build_junit, failure_text, write_junit
from dialflow.testing.runner import CallLeg, Mismatch, SuiteReport, TestResult, TestStatus
from dialflow.testing.suite import suite_from_data

SUITE = suite_from_data(
    {
        "org": "acme",
        "tests": [
            {"name": "passes", "flow": "t", "to": "sip:a@h"},
            {"name": 'fails <badly> & "loud"', "flow": "t", "to": "sip:a@h"},
            {"name": "cannot call", "flow": "t", "to": "sip:a@h"},
        ],
    },
    [],
    name="my-suite",
)


def _leg(session: str, outcome: str, assertions: list[dict[str, Any]]) -> CallLeg:
    call = {
        "sessionId": session,
        "status": "completed",
        "hangupBy": "flow",
        "answeredAt": "2026-01-01T00:00:01.000Z",
        "durationMs": 6150,
        "flow": {"outcome": outcome, "path": ["hear", "bye"], "assertions": assertions},
    }
    events = [
        {
            "seq": 1,
            "type": "status",
            "at": "2026-01-01T00:00:01.000Z",
            "status": "in_progress",
            "code": 200,
        },
        *(
            {"seq": 2 + i, "type": "assertion", "at": "2026-01-01T00:00:04.500Z", **a}
            for i, a in enumerate(assertions)
        ),
    ]
    return CallLeg(call, events)


def _report() -> SuiteReport:
    ok, bad, err = SUITE.tests
    heard_bad = "thank you for calling\x07 our office"  # BEL cannot be in XML
    return SuiteReport(
        SUITE,
        "http://api",
        "acme",
        [
            TestResult(
                ok,
                TestStatus.PASSED,
                "sip:a@h",
                _leg(
                    "c_ok",
                    "passed",
                    [{"node": "hear", "expected": "hi", "heard": "hi there", "passed": True}],
                ),
            ),
            TestResult(
                bad,
                TestStatus.FAILED,
                "sip:a@h",
                _leg(
                    "c_bad",
                    "failed",
                    [
                        {
                            "node": "hear",
                            "expected": "press zero",
                            "heard": heard_bad,
                            "passed": False,
                        }
                    ],
                ),
                mismatches=[Mismatch("flow.outcome", "passed", "failed")],
            ),
            TestResult(
                err,
                TestStatus.ERROR,
                "sip:a@h",
                error="call not created: HTTP 404 not_found: flow",
                wall_seconds=0.25,
            ),
        ],
        datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),
        7.5,
    )


def test_junit_round_trip(tmp_path: Path) -> None:
    path = write_junit(_report(), tmp_path / "deep" / "report.xml")
    raw = path.read_bytes()
    assert raw.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert {k: root.attrib[k] for k in ("tests", "failures", "errors", "time")} == {
        "tests": "3",
        "failures": "1",
        "errors": "1",
        "time": "7.500",
    }
    [suite] = root
    assert suite.attrib["name"] == "my-suite"
    assert suite.attrib["timestamp"] == "2026-01-01T12:00:00"
    props = {p.attrib["name"]: p.attrib["value"] for p in suite.findall("properties/property")}
    assert props == {"server": "http://api", "org": "acme"}
    cases = suite.findall("testcase")
    assert [c.attrib["name"] for c in cases] == ["passes", 'fails <badly> & "loud"', "cannot call"]
    assert {c.attrib["classname"] for c in cases} == {"my-suite"}
    assert [c.attrib["time"] for c in cases] == ["6.150", "6.150", "0.250"]

    ok, bad, err = cases
    assert ok.find("failure") is None and ok.find("error") is None
    assert ok.find("properties/property").attrib == {"name": "sessionId", "value": "c_ok"}

    failure = bad.find("failure")
    assert failure is not None and failure.attrib["type"] == "ExpectationFailed"
    assert failure.attrib["message"] == (
        'flow.outcome: expected passed, got failed; assertion hear: expected "press zero", '
        'heard "thank you for calling\ufffd our office"'
    )
    assert failure.text is not None
    assert 'hear: expected "press zero"' in failure.text
    assert 'heard    "thank you for calling\ufffd our office"' in failure.text
    assert "Session: c_bad" in failure.text
    out = bad.findtext("system-out") or ""
    assert out.startswith("session: c_bad\ncall: GET /v1/organizations/acme/calls/c_bad\n")
    assert '+3.50 s  tester  FAIL expected "press zero"' in out

    error = err.find("error")
    assert error is not None and error.attrib["type"] == "CallError"
    assert error.attrib["message"] == "call not created: HTTP 404 not_found: flow"
    assert err.find("properties") is None  # no call, no session
    assert (err.findtext("system-out") or "").startswith("session: -")


def test_failure_text_lists_every_failed_assertion() -> None:
    report = _report()
    result = report.results[1]
    result.leg.call["flow"]["assertions"].append(  # type: ignore[union-attr]
        {"node": "hear-2", "expected": "goodbye", "heard": "", "passed": False}
    )
    text = failure_text(result)
    assert text.splitlines()[:4] == [
        "Expected vs actual:",
        "  flow.outcome  expected passed  got failed",
        "Failed assertions:",
        '  hear: expected "press zero"',
    ]
    assert '  hear-2: expected "goodbye"' in text and '          heard    ""' in text


def test_build_junit_is_parseable_text() -> None:
    tree = build_junit(_report())
    text = ET.tostring(tree.getroot(), encoding="unicode")
    assert ET.fromstring(text).attrib["tests"] == "3"
