"""Testing flows with flows: suite files, the runner, JUnit reports, the embedded server.

``dialflow test SUITE.yaml`` (:mod:`.command`) and ``dialflow demo`` are built on these.
"""

from .embedded import EmbeddedError, EmbeddedServer
from .results import (
    CallLeg,
    Mismatch,
    SuiteReport,
    TestResult,
    TestStatus,
    check_expectations,
)
from .runner import SetupError, SuiteRunner
from .suite import Expect, Suite, SuiteError, SuiteTest, load_suite, parse_suite, suite_from_data

__all__ = [
    "CallLeg",
    "EmbeddedError",
    "EmbeddedServer",
    "Expect",
    "Mismatch",
    "SetupError",
    "Suite",
    "SuiteError",
    "SuiteReport",
    "SuiteRunner",
    "SuiteTest",
    "TestResult",
    "TestStatus",
    "check_expectations",
    "load_suite",
    "parse_suite",
    "suite_from_data",
]
