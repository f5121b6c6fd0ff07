"""``dialflow demo``: the whole product in one command, on this machine, in seconds.

It starts an embedded server (:class:`~dialflow.testing.embedded.EmbeddedServer`), creates
the organization ``demo`` with an IVR flow on inbound number 7001 and a tester flow,
and has the server call itself: a real SIP call over loopback, with RTP, text-to-speech,
speech recognition, RFC 4733 DTMF and answering-machine detection. It prints the call's
timeline from both sides, the AMD result and the assertions, and where to look next.
Exit status 0 only if the tester's flow outcome is ``passed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .testing.embedded import EmbeddedError, EmbeddedServer
from .testing.runner import SetupError, SuiteRunner, TestResult, TestStatus
from .testing.suite import Suite, suite_from_data
from .testing.timeline import amd_text, build_timeline, prompts_of

ORG = "demo"
NUMBER = "7001"

#: The flow under test: say a menu, gather a digit, branch, confirm, hang up.
IVR_FLOW: dict[str, Any] = {
    "id": "demo-ivr",
    "name": "Demo IVR: appointment menu",
    "start": "menu",
    "nodes": {
        "menu": {
            "type": "say",
            "text": "Hello. This is a reminder of your appointment tomorrow. "
            "Press one to confirm, or two to cancel.",
            "next": "choice",
        },
        "choice": {
            "type": "gather",
            "input": ["dtmf"],
            "numDigits": 1,
            "timeout": 8,
            "saveAs": "choice",
            "next": "route",
        },
        "route": {
            "type": "branch",
            "cases": [
                {"when": "vars.choice == '1'", "next": "confirmed"},
                {"when": "vars.choice == '2'", "next": "cancelled"},
            ],
            "default": "no-input",
        },
        "confirmed": {
            "type": "say",
            "text": "Your appointment is confirmed. We look forward to seeing you tomorrow. "
            "Goodbye.",
            "bargeIn": False,
            "next": "linger",
        },
        "cancelled": {
            "type": "say",
            "text": "Your appointment is cancelled. Goodbye.",
            "bargeIn": False,
            "next": "linger",
        },
        "no-input": {"type": "say", "text": "Sorry, I did not get that. Goodbye.", "next": "bye"},
        # Silence before hanging up, longer than the tester's `within`: an expect still
        # deciding when the line drops would record no assertion. (The tester hangs up
        # first when it has heard its phrase, so this costs nothing when the demo passes.)
        "linger": {"type": "pause", "seconds": 10, "next": "bye"},
        "bye": {"type": "hangup"},
    },
}

#: The tester: hear the menu, press 1, hear the confirmation.
TESTER_FLOW: dict[str, Any] = {
    "id": "demo-tester",
    "name": "Demo tester: confirms the appointment",
    "start": "hear-menu",
    "nodes": {
        "hear-menu": {
            "type": "expect",
            "heard": "press one to confirm",
            "within": 12,
            "next": "press-1",
        },
        "press-1": {"type": "send_dtmf", "digits": "1", "next": "hear-confirmation"},
        "hear-confirmation": {
            "type": "expect",
            "heard": "appointment is confirmed",
            "within": 8,
            "next": "hang-up",
        },
        "hang-up": {"type": "hangup"},
    },
}

#: AMD on the tester's call, async (the flow starts at answer); it runs whatever AMD says.
AMD = {"enabled": True, "mode": "async", "runFlowOn": ["human", "machine", "fax", "unknown"]}

_KIND_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "dtmf": "cyan",
    "amd": "magenta",
    "heard": "green",
    "node": "",
    "say": "yellow",
    "status": "bold",
    "sip": "dim",
    "flow": "blue",
}
_SIDE_STYLE = {"tester": "cyan", "ivr": "yellow"}


def _demo_suite() -> Suite:
    return suite_from_data(
        {
            "name": "demo",
            "org": ORG,
            "numbers": [{"number": NUMBER, "flowId": IVR_FLOW["id"]}],
            "tests": [
                {
                    "name": "tester confirms the appointment",
                    "flow": TESTER_FLOW["id"],
                    "to": f"sip:{NUMBER}@{{sip}}",
                    "timeout": 25,
                    "amd": AMD,
                    "expect": {"status": "completed", "flowOutcome": "passed"},
                }
            ],
        },
        [IVR_FLOW, TESTER_FLOW],
        name="demo",
    )


class _Steps:
    """Prints the setup steps (a RunListener for the preparation)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def setup(self, message: str) -> None:
        what, _, rest = message.partition(" ")
        self.console.print(f"  [bold]{what:<8}[/bold] {escape(rest)}")

    def test_started(self, test: Any) -> None:
        pass

    def test_finished(self, result: TestResult) -> None:
        pass


def _timeline_table(result: TestResult) -> Table:
    sides = []
    prompts: dict[str, dict[str, str]] = {}
    if result.leg is not None:
        sides.append(("tester", result.leg.events))
        prompts["tester"] = prompts_of(result.leg.flow)
    if result.far_end is not None:
        sides.append(("ivr", result.far_end.events))
        prompts["ivr"] = prompts_of(result.far_end.flow)
    table = Table(
        title="Timeline (seconds from answer; tester = caller, ivr = number 7001)",
        title_justify="left",
        show_lines=False,
        pad_edge=False,
    )
    table.add_column("t (s)", justify="right", no_wrap=True)
    table.add_column("side", no_wrap=True)
    table.add_column("event", overflow="fold")
    for entry in build_timeline(sides, prompts=prompts):
        side_style = _SIDE_STYLE.get(entry.side, "")
        kind_style = _KIND_STYLE.get(entry.kind, "")
        table.add_row(
            f"{entry.at:+.2f}",
            f"[{side_style}]{entry.side}[/{side_style}]",
            f"[{kind_style}]{escape(entry.text)}[/{kind_style}]"
            if kind_style
            else escape(entry.text),
        )
    return table


def _print_outcome(console: Console, result: TestResult) -> None:
    call = result.call
    flow = call.get("flow") or {}
    console.print()
    console.print("[bold]Outcome[/bold]")
    console.print(
        f"  tester call  {result.session_id}: {call.get('status')}, "
        f"hang-up by {call.get('hangupBy')}, {result.duration_seconds:.1f} s, "
        f"flow outcome [bold]{flow.get('outcome')}[/bold]"
    )
    console.print(f"  tester path  {' > '.join(flow.get('path') or []) or '-'}")
    if result.far_end is not None:
        far = result.far_end.call
        far_flow = far.get("flow") or {}
        console.print(
            f"  ivr call     {far.get('sessionId')}: {far.get('status')}, "
            f"flow outcome {far_flow.get('outcome')}, "
            f"variables {escape(json.dumps(far_flow.get('variables') or {}))}"
        )
        console.print(f"  ivr path     {' > '.join(far_flow.get('path') or []) or '-'}")
    amd = call.get("amd") or {}
    note = (
        "  (an IVR's recorded prompt is a machine to AMD)" if amd.get("result") == "machine" else ""
    )
    console.print(f"  AMD          {escape(amd_text(call.get('amd')))}{note}")
    for a in result.assertions:
        style, mark = ("green", "PASS") if a.get("passed") else ("red", "FAIL")
        console.print(
            f"  [{style}]{mark}[/{style}]         {a.get('node')}: expected "
            f"{escape(repr(a.get('expected')))}, heard {escape(repr(a.get('heard')))}"
        )
    if result.status is not TestStatus.PASSED:
        console.print(f"  [red]problem[/red]      {escape(result.summary())}")


def _print_next(
    console: Console, server: EmbeddedServer, result: TestResult, key: str, keep_running: bool
) -> None:
    base = server.base_url
    console.print()
    console.print("[bold]Next[/bold]")
    console.print(f"  API docs     {base}/docs")
    console.print(f"  Call object  GET {base}/v1/organizations/{ORG}/calls/{result.session_id}")
    console.print(
        f"  its events   GET {base}/v1/organizations/{ORG}/calls/{result.session_id}/events"
    )
    if keep_running:
        console.print(f"  admin token  {server.admin_token}")
        console.print(f"  demo API key {key}")
        console.print(
            f"  try          curl -H 'Authorization: Bearer {key}' "
            f"{base}/v1/organizations/{ORG}/calls/{result.session_id}"
        )
        console.print(
            f"               dialflow call --server {base} --token {key} --org {ORG} "
            f"--flow {TESTER_FLOW['id']} --to sip:{NUMBER}@{server.sip_address}"
        )
    else:
        console.print(
            "  (the server stops now: run [bold]dialflow demo --keep-running[/bold] "
            "to keep it up and open these)"
        )
    console.print(
        "  write your own: docs/testing.md, examples/ "
        "(dialflow test examples/appointment-reminder/suite.yaml --embedded)"
    )


async def run_demo(
    console: Console,
    *,
    keep_running: bool = False,
    port: int = 0,
    sip_port: int = 0,
    outcome: dict[str, int] | None = None,
) -> int:
    """The demo; 0 if the tester's flow passed. ``outcome["code"]`` is set before
    ``--keep-running`` waits, so an interrupted wait still knows the result."""
    started = time.monotonic()
    outcome = outcome if outcome is not None else {}
    console.print(
        "[bold]dialflow demo[/bold]: a tester flow calls an IVR flow on this machine "
        "(real SIP, RTP, TTS, ASR, DTMF, AMD)"
    )
    server = EmbeddedServer(port=port, sip_port=sip_port)
    try:
        await server.start()
    except (EmbeddedError, OSError) as exc:
        console.print(f"[red]cannot start the embedded server:[/red] {escape(str(exc))}")
        return 2
    try:
        console.print(
            f"  [bold]{'server':<8}[/bold] API {server.base_url} (docs at /docs), "
            f"SIP {server.sip_address}, data in {server.data_dir}"
        )
        key = await server.create_org(ORG, "Demo")
        console.print(f"  [bold]{'org':<8}[/bold] {ORG} (with an API key)")
        suite = _demo_suite()
        test = suite.tests[0]
        async with SuiteRunner(
            suite,
            server=server.base_url,
            token=key,
            sip_address=server.sip_address,
            listener=_Steps(console),
        ) as runner:
            try:
                await runner.prepare()
            except SetupError as exc:
                console.print(f"[red]setup failed:[/red] {escape(str(exc))}")
                return 2
            await server.wait_warm()  # recognizer workers up before the first expect
            console.print(
                f"  [bold]{'calling':<8}[/bold] {TESTER_FLOW['id']} -> "
                f"{test.destination(server.sip_address)} (AMD on, async)"
            )
            result = await runner.run_test(test)
        console.print()
        console.print(_timeline_table(result))
        _print_outcome(console, result)
        passed = (
            result.status is TestStatus.PASSED
            and (result.call.get("flow") or {}).get("outcome") == "passed"
        )
        code = 0 if passed else 1
        outcome["code"] = code
        _print_next(console, server, result, key, keep_running)
        console.print()
        verdict = "[bold green]PASSED[/bold green]" if passed else "[bold red]FAILED[/bold red]"
        console.print(
            f"demo call {verdict}: tester outcome "
            f"{(result.call.get('flow') or {}).get('outcome')}, "
            f"finished in {time.monotonic() - started:.1f} s"
        )
        if keep_running:
            console.print(f"\nThe server keeps running at {server.base_url} (Ctrl-C to stop).")
            await server.serve_forever()
        return code
    finally:
        await server.stop()


def main(args: argparse.Namespace) -> int:
    """Entry point from ``dialflow.cli``."""
    if not getattr(args, "verbose", False):
        # The server's (and httpx's, alembic's) INFO lines would interleave with the timeline.
        logging.getLogger().setLevel(logging.WARNING)
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 110
    console = Console(highlight=False, width=width)
    outcome: dict[str, int] = {}
    try:
        return asyncio.run(
            run_demo(
                console,
                keep_running=args.keep_running,
                port=args.port,
                sip_port=args.sip_port,
                outcome=outcome,
            )
        )
    except KeyboardInterrupt:
        return outcome.get("code", 130)
