"""JUnit XML for a suite run, in the shape CI tools read (Jenkins, GitLab, GitHub actions).

* ``<testsuites>`` > one ``<testsuite name=SUITE>`` > one ``<testcase>`` per test, with
  ``classname`` = the suite's name, ``name`` = the test's name and ``time`` = the
  call's duration in seconds (the test's wall time when the call was never answered);
* a test whose call did not end as expected has ``<failure message=... type=...>``:
  the message is one line (expected vs actual, each failed assertion); the text
  repeats it in detail with what the tester heard;
* a test that could not run (HTTP error, timeout) has ``<error>`` instead;
* ``<system-out>`` holds the session id, the Call's URL, what was heard and the call's
  event timeline (both legs when the far end is on the same server);
* the session id is also a ``<property name="sessionId">`` of the testcase.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from .results import SuiteReport, TestResult, TestStatus
from .timeline import amd_text, build_timeline, format_lines, prompts_of

# XML 1.0 §2.2: these code points cannot appear in a document, even escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

FAILURE_TYPE = "ExpectationFailed"
ERROR_TYPE = "CallError"


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def failure_text(result: TestResult) -> str:
    """The multi-line body of ``<failure>``/``<error>``: expected vs actual, assertions."""
    lines: list[str] = []
    if result.error:
        lines.append(result.error)
    if result.mismatches:
        lines.append("Expected vs actual:")
        width = max(len(m.field) for m in result.mismatches)
        for m in result.mismatches:
            lines.append(f"  {m.field:<{width}}  expected {m.expected}  got {m.actual}")
    failed = result.failed_assertions
    if failed:
        lines.append("Failed assertions:")
        for a in failed:
            lines.append(f'  {a.get("node")}: expected "{a.get("expected")}"')
            lines.append(f'  {" " * len(str(a.get("node")))}  heard    "{a.get("heard") or ""}"')
    heard = result.heard  # computed from the event log: once
    if heard:
        lines.append("Heard:")
        lines.extend(f"  {h}" for h in heard)
    if result.session_id:
        lines.append(f"Session: {result.session_id}")
    return "\n".join(lines)


def system_out(result: TestResult, org: str) -> str:
    """Session id, the Call URL, outcome, assertions, what was heard, the event timeline."""
    call = result.call
    lines = [f"session: {result.session_id or '-'}"]
    if result.session_id:
        lines.append(f"call: GET /v1/organizations/{org}/calls/{result.session_id}")
    if result.to:
        lines.append(f"to: {result.to}")
    if call:
        flow = call.get("flow") or {}
        lines.append(
            f"status: {call.get('status')}, hangupBy: {call.get('hangupBy')}, "
            f"flow.outcome: {flow.get('outcome')}, duration: {result.duration_seconds:.2f} s"
        )
        lines.append(f"path: {' > '.join(flow.get('path') or []) or '-'}")
        if call.get("amd") is not None or result.test.amd_spec() is not None:
            lines.append(f"amd: {amd_text(call.get('amd'))}")
        if call.get("error"):
            lines.append(f"error: {call['error']}")
    for a in result.assertions:
        mark = "PASS" if a.get("passed") else "FAIL"
        lines.append(
            f'assertion {mark} {a.get("node")}: expected "{a.get("expected")}", '
            f'heard "{a.get("heard") or ""}"'
        )
    heard = result.heard  # computed from the event log: once
    if heard:
        lines.append("heard:")
        lines.extend(f"  {h}" for h in heard)
    sides = []
    prompts: dict[str, dict[str, str]] = {}
    if result.leg is not None and result.leg.events:
        sides.append(("tester", result.leg.events))
        prompts["tester"] = prompts_of(result.leg.flow)
    if result.far_end is not None:
        far_flow = result.far_end.call.get("flow") or {}
        lines.append(
            f"far end: session {result.far_end.call.get('sessionId')} "
            f"(flow {result.far_end.call.get('flowId')}, path "
            f"{' > '.join(far_flow.get('path') or []) or '-'})"
        )
        sides.append(("far-end", result.far_end.events))
        prompts["far-end"] = prompts_of(result.far_end.flow)
    if sides:
        lines.append("timeline (seconds from answer):")
        lines.extend(format_lines(build_timeline(sides, prompts=prompts)))
    return "\n".join(lines)


def build_junit(report: SuiteReport) -> ET.ElementTree:
    """The JUnit document for ``report``."""
    name = report.suite.name
    counts = {
        "tests": str(len(report.results)),
        "failures": str(report.failed),
        "errors": str(report.errors),
        "skipped": "0",
        "time": _seconds(report.wall_seconds),
    }
    root = ET.Element("testsuites", {"name": "dialflow", **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": name,
            **counts,
            "timestamp": report.started_at.strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": socket.gethostname(),
        },
    )
    if report.suite.path is not None:
        suite.set("file", str(report.suite.path))
    props = ET.SubElement(suite, "properties")
    for key, value in (("server", report.server), ("org", report.org)):
        ET.SubElement(props, "property", {"name": key, "value": _clean(value)})
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": name,
                "name": _clean(result.name),
                "time": _seconds(result.duration_seconds),
            },
        )
        if result.session_id:
            case_props = ET.SubElement(case, "properties")
            ET.SubElement(case_props, "property", {"name": "sessionId", "value": result.session_id})
        if result.status is TestStatus.FAILED:
            tag, kind = "failure", FAILURE_TYPE
        elif result.status is TestStatus.ERROR:
            tag, kind = "error", ERROR_TYPE
        else:
            tag = kind = ""
        if tag:
            element = ET.SubElement(case, tag, {"message": _clean(result.summary()), "type": kind})
            element.text = _clean(failure_text(result))
        out = ET.SubElement(case, "system-out")
        out.text = _clean(system_out(result, report.org))
    ET.indent(root, space="  ")
    return ET.ElementTree(root)


def write_junit(report: SuiteReport, path: str | Path) -> Path:
    """Write the report as JUnit XML (UTF-8, with declaration); the path written."""
    target = Path(path)
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    build_junit(report).write(target, encoding="utf-8", xml_declaration=True)
    return target
