"""``dialflow test SUITE.yaml``: load, (optionally) start an embedded server, run, report.

Exit codes: 0 every test passed; 1 a test failed or could not run; 2 the suite file is
invalid or the suite could not be prepared (server unreachable, a flow refused...).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from rich.console import Console
from rich.markup import escape

from .embedded import EmbeddedError, EmbeddedServer
from .junit import write_junit
from .progress import ProgressUI, print_summary
from .runner import RunListener, SetupError, SuiteReport, SuiteRunner
from .suite import Suite, SuiteError, load_suite

DEFAULT_SERVER = "http://127.0.0.1:8080"


async def run_suite(
    suite: Suite,
    *,
    server: str | None = None,
    token: str | None = None,
    org: str | None = None,
    embedded: bool = False,
    sip_address: str | None = None,
    concurrency: int | None = None,
    listener: RunListener | None = None,
) -> SuiteReport:
    """Run ``suite`` against ``server`` (with ``token``), or against a server started in
    this process when ``embedded``. Raises :class:`SetupError` when it cannot start."""
    org_id = org or suite.model.org
    if embedded:
        embedded_server = EmbeddedServer()
        try:
            await embedded_server.start()
        except (EmbeddedError, OSError) as exc:
            raise SetupError(f"embedded server: {exc}") from None
        try:
            if listener is not None:
                listener.setup(
                    f"embedded server: API {embedded_server.base_url}, "
                    f"SIP {embedded_server.sip_address}"
                )
            try:
                key = await embedded_server.create_org(org_id)
            except EmbeddedError as exc:
                raise SetupError(str(exc)) from None
            runner = SuiteRunner(
                suite,
                server=embedded_server.base_url,
                token=key,
                org=org_id,
                sip_address=sip_address or embedded_server.sip_address,
                concurrency=concurrency,
                listener=listener,
            )
            async with runner:
                await runner.prepare()
                # Speech workers up before the first expect starts its clock.
                await embedded_server.wait_warm()
                return await runner.run_tests()
        finally:
            await embedded_server.stop()
    if not server:
        raise SetupError("no server: pass --server, set DIALFLOW_URL or `server:` in the suite")
    if not token:
        raise SetupError("no token: pass --token or set DIALFLOW_TOKEN (or use --embedded)")
    async with SuiteRunner(
        suite,
        server=server,
        token=token,
        org=org_id,
        sip_address=sip_address,
        concurrency=concurrency,
        listener=listener,
    ) as runner:
        return await runner.run()


def _quiet_logs(verbose: bool) -> None:
    # The embedded server, httpx and alembic log at INFO; the progress output says it all.
    if not verbose:
        logging.getLogger().setLevel(logging.WARNING)


async def _main(args: argparse.Namespace, console: Console) -> int:
    try:
        suite = load_suite(args.suite)
    except SuiteError as exc:
        console.print(f"[red]invalid suite[/red] {escape(exc.source)}:")
        for path, message in exc.problems:
            console.print(f"  {escape(path or '(document)')}: {escape(message)}")
        return 2
    server = None
    if not args.embedded:
        server = (
            args.server or suite.model.server or os.environ.get("DIALFLOW_URL") or DEFAULT_SERVER
        )
    where = "an embedded server" if args.embedded else server
    count = len(suite.tests)
    console.print(
        f"[bold]suite {escape(suite.name)}[/bold]: {count} test{'s' * (count != 1)} "
        f"on {escape(str(where))}"
    )
    live = not args.no_progress and console.is_terminal
    try:
        with ProgressUI(console, count, live=live) as ui:
            report = await run_suite(
                suite,
                server=server,
                token=args.token,
                org=args.org,
                embedded=args.embedded,
                sip_address=args.sip,
                concurrency=args.concurrency,
                listener=ui,
            )
    except SetupError as exc:
        console.print(f"[red]cannot run the suite:[/red] {escape(str(exc))}")
        return 2
    print_summary(report, console)
    if args.junit:
        written = write_junit(report, args.junit)
        console.print(f"JUnit report: {written}")
    return 0 if report.ok else 1


def main(args: argparse.Namespace) -> int:
    """Entry point from ``dialflow.cli``."""
    _quiet_logs(getattr(args, "verbose", False))
    if args.concurrency is not None and args.concurrency < 1:
        print("dialflow test: --concurrency must be at least 1", file=sys.stderr)
        return 2
    # CI logs are not terminals: rich would assume 80 columns and fold the summary table.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
    console = Console(highlight=False, width=width)
    try:
        return asyncio.run(_main(args, console))
    except KeyboardInterrupt:  # the embedded server, if any, was stopped on the way out
        console.print("[red]interrupted[/red]")
        return 130
