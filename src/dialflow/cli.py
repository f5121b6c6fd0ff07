"""The ``dialflow`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
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


def _rtp_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dialflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the SIP/RTP endpoint")
    _add_sip_options(serve)
    serve.add_argument("--greeting", help="WAV file played to inbound callers")
    serve.add_argument(
        "--max-call-seconds", type=float, default=60.0, help="hang up inbound calls after this"
    )

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
        from .telephony.runner import serve

        return asyncio.run(
            serve(
                args.sip_host,
                args.sip_port,
                _rtp_range(args.rtp_ports),
                greeting=args.greeting,
                max_call_seconds=args.max_call_seconds,
                stop_signals=(signal.SIGINT, signal.SIGTERM),
            )
        )
    if args.command == "dial":
        from .telephony.runner import dial

        return asyncio.run(dial(args))
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
