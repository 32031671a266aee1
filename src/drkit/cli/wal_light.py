"""`drkit wal-push PATH` and `drkit wal-fetch NAME DEST` without the full command line.

Exit codes as PostgreSQL needs them: wal-push 0 stored (or already there, identical), else
the error's code; wal-fetch 0 written, 1 not in the archive, 126 any error (so recovery
stops instead of ending early, short of its target).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drkit.config.loader import find_config, load_stack
from drkit.domain.errors import DrkitError
from drkit.engines.core.workspace import open_workspace
from drkit.engines.postgres.wal.archive import WalArchive

FETCH_ERROR = 126


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drkit", add_help=False)
    parser.add_argument("--config", "-c")
    parser.add_argument("--output", "-o", default="text", choices=("text", "json"))
    for flag in ("--yes", "--dry-run", "--debug"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("-y", action="store_true", dest="yes_short")
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("wal-push", add_help=False)
    push.add_argument("path")
    push.add_argument("--service")
    fetch = commands.add_parser("wal-fetch", add_help=False)
    fetch.add_argument("name")
    fetch.add_argument("dest")
    fetch.add_argument("--service")
    return parser


def _archive(config: str | None, service: str | None) -> WalArchive:
    ws = open_workspace(load_stack(find_config(config), strict_secrets=False))
    svc = ws.postgres(service)
    return WalArchive(ws.repo, ws.stack.name, svc.name, ws.codec)


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already said what is wrong
        return 2 if exc.code else 0
    try:
        if args.command == "wal-push":
            result = _archive(args.config, args.service).push(Path(args.path))
            if args.output == "json":
                sys.stdout.write(
                    json.dumps({"name": result.name, "key": result.key, "stored": result.stored}) + "\n"
                )
            elif not result.stored:
                sys.stderr.write(f"{result.name} was already archived with the same content\n")
            return 0
        found = _archive(args.config, args.service).fetch(args.name, Path(args.dest))
        return 0 if found else 1
    except DrkitError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return FETCH_ERROR if args.command == "wal-fetch" else int(exc.exit_code)
