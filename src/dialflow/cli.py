"""The ``dialflow`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__


def _install_uvloop() -> str:
    """Use uvloop when installed (4× the datagram rate of stock asyncio, PERFORMANCE-NOTES)."""
    if os.environ.get("DIALFLOW_NO_UVLOOP"):
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _add_sip_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sip-host", default=os.environ.get("DIALFLOW_SIP_HOST", "127.0.0.1"))
    parser.add_argument(
        "--sip-port", type=int, default=int(os.environ.get("DIALFLOW_SIP_PORT", "5060"))
    )
    parser.add_argument(
        "--rtp-ports",
        default=os.environ.get("DIALFLOW_RTP_PORTS", "10000-20000"),
        help="RTP port range, e.g. 10000-20000",
    )


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=os.environ.get("DIALFLOW_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("DIALFLOW_TOKEN"))
    parser.add_argument("--org", default=os.environ.get("DIALFLOW_ORG"), required=False)
    parser.add_argument("--json", action="store_true", help="print JSON")


def _rtp_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dialflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server with its SIP/RTP endpoint")
    serve.add_argument("--host", default=os.environ.get("DIALFLOW_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("DIALFLOW_PORT", "8080")))
    _add_sip_options(serve)
    serve.add_argument("--data-dir", default=os.environ.get("DIALFLOW_DATA_DIR", "./data"))
    serve.add_argument("--flows-dir", help="load flows from DIR/<orgId>/*.yaml|json at start")

    call = sub.add_parser("call", help="place a call through the API")
    _add_client_options(call)
    call.add_argument("--flow", required=True)
    call.add_argument("--to", required=True, help="SIP URI or +E.164 number")
    call.add_argument("--from", dest="from_", help="caller id")
    call.add_argument("--mode", choices=["sync", "poll", "webhook"], default="sync")
    call.add_argument("--webhook-url")
    call.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    call.add_argument("--amd", action="store_true", help="turn on answering-machine detection")
    call.add_argument("--ring-timeout", type=int)
    call.add_argument("--wait", action="store_true", help="poll until the call ends (poll mode)")

    flows = sub.add_parser("flows", help="manage flows through the API")
    flows_sub = flows.add_subparsers(dest="flows_command", required=True)
    push = flows_sub.add_parser("push", help="upload a flow file (new version if it exists)")
    _add_client_options(push)
    push.add_argument("files", nargs="+")

    dial = sub.add_parser("dial", help="place one SIP call and print what happened")
    _add_sip_options(dial)
    dial.add_argument("to", help="SIP URI to call, e.g. sip:bob@127.0.0.1:5070")
    dial.add_argument("--proxy", help="outbound proxy SIP URI")
    dial.add_argument("--username", help="digest user name for 401/407 challenges")
    dial.add_argument("--password", default=os.environ.get("DIALFLOW_SIP_PASSWORD"))
    dial.add_argument("--play", help="WAV file to play once answered")
    dial.add_argument("--dtmf", help="digits to send once answered (RFC 4733)")
    dial.add_argument("--seconds", type=float, default=5.0, help="stay this long, then BYE")
    dial.add_argument("--ring-timeout", type=float, default=30.0)
    dial.add_argument("--json", action="store_true", help="print the outcome as JSON")

    test = sub.add_parser("test", help="run a suite of tester calls (JUnit; exit 1 on failure)")
    test.add_argument("suite", help="suite file (YAML or JSON), see docs/testing.md")
    test.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    test.add_argument(
        "--server", help="API base URL (default: the suite's server, DIALFLOW_URL, :8080)"
    )
    test.add_argument(
        "--token",
        default=os.environ.get("DIALFLOW_TOKEN"),
        help="API key of the suite's organization (default: DIALFLOW_TOKEN)",
    )
    test.add_argument("--org", help="organization (default: the suite's org)")
    test.add_argument("--concurrency", type=int, help="calls at once (default: the suite's)")
    test.add_argument(
        "--embedded",
        action="store_true",
        help="start a server in this process for the run (self-contained)",
    )
    test.add_argument(
        "--sip",
        metavar="HOST:PORT",
        help="the server's SIP address for {sip} (default: from its numbers)",
    )
    test.add_argument("--no-progress", action="store_true", help="no live progress bar")

    demo = sub.add_parser("demo", help="embedded server + a real call from a tester flow to an IVR")
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the server up after the call (Ctrl-C stops it)",
    )
    demo.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    demo.add_argument("--sip-port", type=int, default=0, help="SIP port (default: a free one)")

    amd = sub.add_parser("amd", help="answering-machine detection tools")
    amd_sub = amd.add_subparsers(dest="amd_command", required=True)
    classify = amd_sub.add_parser("classify", help="classify recordings offline")
    classify.add_argument("files", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "amd":
        from .amd.offline import main as amd_main

        return amd_main(list(args.files))
    _setup_logging(args.verbose)
    _install_uvloop()
    if args.command == "serve":
        from .config import Settings
        from .server import run

        settings = Settings.from_env(
            host=args.host,
            port=args.port,
            sip_host=args.sip_host,
            sip_port=args.sip_port,
            rtp_ports=_rtp_range(args.rtp_ports),
            data_dir=args.data_dir,
            flows_dir=args.flows_dir,
        )
        return run(settings)
    if args.command in ("call", "flows"):
        from . import client

        return client.main(args)
    if args.command in ("test", "demo") and not args.verbose:
        # Their own output says what happens; INFO logs (server, httpx, alembic at import)
        # would interleave with the progress and the timeline.
        logging.getLogger().setLevel(logging.WARNING)
    if args.command == "test":
        from .testing.command import main as test_main

        return test_main(args)
    if args.command == "demo":
        from .demo import main as demo_main

        return demo_main(args)
    if args.command == "dial":
        from .telephony.runner import dial

        return asyncio.run(dial(args))
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
