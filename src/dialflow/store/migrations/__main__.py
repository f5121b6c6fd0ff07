"""Developer command line for the schema migrations.

    python -m dialflow.store.migrations revision -m "add calls.campaign" --autogenerate
    python -m dialflow.store.migrations upgrade [--data-dir ./data | --database-url URL]
    python -m dialflow.store.migrations current [--data-dir ./data | --database-url URL]
    python -m dialflow.store.migrations history

``revision`` writes ``versions/NNNN_<slug>.py`` into the source tree (an editable
install); ``--autogenerate`` fills it with the difference between ``schema.py`` and a
scratch database at the current head. Review it, run ``ruff format`` on it, and test it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import create_engine

from ..factory import open_store, sqlite_path
from ..migrate import current_revision, head_revision, new_revision, script_directory


async def _upgrade(database_url: str | None, data_dir: Path) -> None:
    store = await open_store(database_url, data_dir)  # open() upgrades to head
    await store.close()


def _current(database_url: str | None, data_dir: Path) -> str:
    path = sqlite_path(database_url, data_dir)
    if not isinstance(path, Path) or not path.is_file():
        return f"(no database at {path})"
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return current_revision(conn) or "(empty)"
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dialflow.store.migrations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="write a new revision file (source checkout)")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true", help="diff schema.py against head")
    for name, text in (("upgrade", "upgrade a database to head"), ("current", "its revision")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--database-url", default=None)
        cmd.add_argument("--data-dir", type=Path, default=Path("./data"))
    sub.add_parser("history", help="list the revisions, newest first")
    args = parser.parse_args(argv)

    if args.cmd == "revision":
        if not re.fullmatch(r"[\w .,:+-]+", args.message):
            parser.error("keep the message to letters, digits and simple punctuation")
        new_revision(args.message, args.autogenerate)
    elif args.cmd == "upgrade":
        asyncio.run(_upgrade(args.database_url, args.data_dir))
        print(head_revision())
    elif args.cmd == "current":
        print(_current(args.database_url, args.data_dir))
    else:
        for script in script_directory().walk_revisions():
            print(f"{script.revision}  {script.doc.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
