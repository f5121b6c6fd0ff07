"""Terminal output of ``dialflow test``: live progress (rich) and the summary table.

On a terminal a progress bar shows how many tests are done and which are running;
each finished test prints one line above it. When the output is not a terminal
(CI logs), rich draws no animation and only the lines and the summary remain.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .results import SuiteReport, TestResult, TestStatus
from .suite import SuiteTest

_STYLE = {TestStatus.PASSED: "green", TestStatus.FAILED: "red", TestStatus.ERROR: "magenta"}
_MARK = {TestStatus.PASSED: "PASS", TestStatus.FAILED: "FAIL", TestStatus.ERROR: "ERROR"}


class ProgressUI:
    """A :class:`~dialflow.testing.runner.RunListener` drawing a rich progress bar."""

    def __init__(self, console: Console, total: int, *, live: bool = True) -> None:
        self.console = console
        self.total = total
        self._running: list[str] = []
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._live = live

    def __enter__(self) -> ProgressUI:
        if self._live:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("preparing", total=self.total)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)
            self._progress = None

    def _describe(self) -> None:
        if self._progress is None or self._task is None:
            return
        running = ", ".join(self._running[:3]) + (" …" if len(self._running) > 3 else "")
        self._progress.update(self._task, description=f"running: {running}" if running else "tests")

    def setup(self, message: str) -> None:
        self.console.print(f"  [dim]{escape(message)}[/dim]")

    def test_started(self, test: SuiteTest) -> None:
        self._running.append(test.name)
        self._describe()

    def test_finished(self, result: TestResult) -> None:
        if result.name in self._running:
            self._running.remove(result.name)
        style = _STYLE[result.status]
        line = (
            f"[{style}]{_MARK[result.status]:<5}[/{style}] {escape(result.name)} "
            f"[dim]({result.duration_seconds:.1f} s"
            + (f", {result.session_id}" if result.session_id else "")
            + ")[/dim]"
        )
        if result.status is not TestStatus.PASSED:
            line += f"\n      {escape(result.summary())}"
        self.console.print(line)
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
        self._describe()


def summary_table(report: SuiteReport) -> Table:
    """One row per test: result, call time, session id, why it failed."""
    table = Table(
        title=f"suite {report.suite.name} on {report.server} (org {report.org})",
        title_justify="left",
    )
    table.add_column("test", overflow="fold")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("session", no_wrap=True)
    table.add_column("details", overflow="fold")
    for r in report.results:
        details = r.short_reason()
        style = _STYLE[r.status]
        table.add_row(
            escape(r.name),
            f"[{style}]{r.status.value}[/{style}]",
            f"{r.duration_seconds:.1f} s",
            r.session_id or "-",
            escape(details),
        )
    return table


def print_summary(report: SuiteReport, console: Console) -> None:
    """The table and a closing line with the counts."""
    console.print()
    console.print(summary_table(report))
    style = "green" if report.ok else "red"
    console.print(
        f"[{style}]{len(report.results)} test{'s' * (len(report.results) != 1)}: "
        f"{report.passed} passed, {report.failed} failed, "
        f"{report.errors} errors[/{style}] in {report.wall_seconds:.1f} s"
    )
