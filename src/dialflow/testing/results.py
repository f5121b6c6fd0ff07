"""What a suite run produced: per-test verdicts, the calls behind them, the report.

:func:`check_expectations` turns a terminal Call (and its event log) into mismatches
against a test's ``expect``; :class:`TestResult` carries the Call, its events and the
far end's; :class:`SuiteReport` is what the JUnit writer and the summary table read.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .suite import Suite, SuiteTest

#: Call statuses after which nothing changes (API.md: the Call object's ``status``).
TERMINAL = frozenset({"completed", "busy", "no_answer", "failed", "canceled"})


class TestStatus(enum.StrEnum):
    """A test's verdict (JUnit: passed, ``<failure>``, ``<error>``)."""

    __test__ = False  # not a pytest class

    PASSED = "passed"
    FAILED = "failed"  # the call ran and did not end as expected
    ERROR = "error"  # the call could not be made or followed (HTTP error, timeout)


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One expectation that did not hold: the Call field, expected and actual values."""

    field: str
    expected: str
    actual: str


@dataclass(slots=True)
class CallLeg:
    """A call as the API shows it: the Call object, its event log and its flow document."""

    call: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    flow: dict[str, Any] | None = None


@dataclass(slots=True)
class TestResult:
    """What happened in one test."""

    __test__ = False

    test: SuiteTest
    status: TestStatus
    to: str | None = None
    leg: CallLeg | None = None
    far_end: CallLeg | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None
    wall_seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.test.name

    @property
    def call(self) -> dict[str, Any]:
        return self.leg.call if self.leg is not None else {}

    @property
    def session_id(self) -> str | None:
        value = self.call.get("sessionId")
        return str(value) if value else None

    @property
    def assertions(self) -> list[dict[str, Any]]:
        flow = self.call.get("flow") or {}
        return list(flow.get("assertions") or [])

    @property
    def failed_assertions(self) -> list[dict[str, Any]]:
        return [a for a in self.assertions if not a.get("passed")]

    @property
    def heard(self) -> list[str]:
        """Everything the tester recognised: expect transcripts and listen results."""
        out: list[str] = []
        for event in self.leg.events if self.leg is not None else []:
            if event.get("type") in ("assertion", "listen") and event.get("heard"):
                out.append(f"{event.get('node')}: {event['heard']}")
            elif event.get("type") == "gather" and event.get("value"):
                out.append(f"{event.get('node')} ({event.get('kind')}): {event['value']}")
        if not out:  # events unavailable: the assertions still say what was heard
            out = [f"{a.get('node')}: {a.get('heard')}" for a in self.assertions if a.get("heard")]
        return out

    @property
    def duration_seconds(self) -> float:
        """The answered call's duration; the test's wall time for calls never answered."""
        duration_ms = self.call.get("durationMs")
        if self.call.get("answeredAt") and isinstance(duration_ms, int | float):
            return float(duration_ms) / 1000.0
        return self.wall_seconds

    def short_reason(self) -> str:
        """A few words for a table cell: ``flow.outcome failed (expected passed); ...``."""
        if self.status is TestStatus.PASSED:
            flow = self.call.get("flow") or {}
            return f"{self.call.get('status')}, flow {flow.get('outcome')}"
        if self.error:
            return self.error.splitlines()[0]
        parts = [
            f"{m.field} {m.actual} (expected {m.expected})"
            for m in self.mismatches
            if not m.field.startswith("assertion ")
        ]
        failed = [str(a.get("node")) for a in self.failed_assertions]
        failed += [
            m.field.removeprefix("assertion ")
            for m in self.mismatches
            if m.field.startswith("assertion ")
        ]
        if failed:
            parts.append(f"failed assertion{'s' * (len(failed) > 1)}: {', '.join(failed)}")
        return "; ".join(parts) or self.status.value

    def summary(self) -> str:
        """One line: why the test did not pass (JUnit's failure ``message``)."""
        if self.status is TestStatus.PASSED:
            return "passed"
        if self.error:
            return self.error
        parts = [f"{m.field}: expected {m.expected}, got {m.actual}" for m in self.mismatches]
        for a in self.failed_assertions:
            parts.append(
                f"assertion {a.get('node')}: expected {_q(a.get('expected'))}, "
                f"heard {_q(a.get('heard'))}"
            )
        return "; ".join(parts) or self.status.value


def _q(value: Any) -> str:
    return '"' + ("" if value is None else str(value)) + '"'


@dataclass(slots=True)
class SuiteReport:
    """A finished run."""

    suite: Suite
    server: str
    org: str
    results: list[TestResult]
    started_at: datetime
    wall_seconds: float

    @property
    def passed(self) -> int:
        return sum(r.status is TestStatus.PASSED for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status is TestStatus.FAILED for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.status is TestStatus.ERROR for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.status is TestStatus.PASSED for r in self.results)


def check_expectations(
    test: SuiteTest, call: dict[str, Any], events: Sequence[dict[str, Any]]
) -> list[Mismatch]:
    """Compare a terminal Call with ``test.expect``."""
    expect = test.expect
    flow = call.get("flow") or {}
    amd = call.get("amd") or {}
    checks = [
        ("status", expect.status, call.get("status")),
        ("flow.outcome", expect.flow_outcome, flow.get("outcome")),
        ("amd.result", expect.amd_result, amd.get("result")),
        ("hangupBy", expect.hangup_by, call.get("hangupBy")),
    ]
    out = [
        Mismatch(name, str(want), str(got))
        for name, want, got in checks
        if want is not None and want != got
    ]
    if expect.flow_outcome == "passed":
        # An expect node cut short by the far end's hang-up records no assertion, and
        # the flow can still end "passed": for a test, an unfinished expect is a failure.
        for node in unfinished_expects(events):
            out.append(
                Mismatch(
                    f"assertion {node}",
                    "a result from this expect node",
                    "none: the call ended while it was listening",
                )
            )
    return out


def unfinished_expects(events: Sequence[dict[str, Any]]) -> list[str]:
    """Expect nodes entered whose assertion never came (in order, once each)."""
    pending: dict[str, int] = {}
    for event in events:
        if event.get("type") == "flow.node.entered" and event.get("nodeType") == "expect":
            node = str(event.get("node"))
            pending[node] = pending.get(node, 0) + 1
        elif event.get("type") == "assertion":
            node = str(event.get("node"))
            if pending.get(node):
                pending[node] -= 1
    return [node for node, count in pending.items() if count > 0]
