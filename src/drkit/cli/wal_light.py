"""`drkit wal-push PATH` and `drkit wal-fetch NAME DEST` without the full command line.

Exit codes as PostgreSQL needs them: wal-push 0 stored (or already there, identical), else
the error's code; wal-fetch 0 written, 1 only when the archive has no such file (decided by
a stat of its keys, never by a failed read), 126 for anything else, with one line on stderr.

Why 126: PostgreSQL reads a restore_command exit status below 126 as "no such file" and ends
recovery there (a restore to latest would promote early, without the tail). A status above
125 (the shell's "cannot execute", 126, and "not found", 127) or death by a signal other
than SIGTERM makes the startup process fail with FATAL, so recovery stops and the server
does not come up (see wait_result_is_any_signal in PostgreSQL's xlogarchive.c). 126 says
"the command ran and failed", not "not found" (127) nor a signal (128+n).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from drkit.config.loader import find_config, load_stack
from drkit.domain.errors import DrkitError
from drkit.engines.core.workspace import open_workspace
from drkit.engines.postgres.wal.archive import WalArchive, archive_for
from drkit.engines.postgres.wal.identity import read_data_dir

FETCH_ABSENT = 1
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
    """PostgreSQL runs archive_command and restore_command in its data directory: the
    cluster found there is the one whose WAL is pushed, or fetched for."""
    ws = open_workspace(load_stack(find_config(config), strict_secrets=False))
    svc = ws.postgres(service)
    return archive_for(ws, svc, local=read_data_dir(Path.cwd()))


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already said what is wrong
        if not exc.code:
            return 0
        return FETCH_ERROR if "wal-fetch" in argv else 2  # a broken restore_command is not "absent"
    if args.command == "wal-fetch":
        return fetch_status(lambda: _archive(args.config, args.service).fetch(args.name, Path(args.dest)))
    try:
        result = _archive(args.config, args.service).push(Path(args.path))
    except DrkitError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return int(exc.exit_code)
    if args.output == "json":
        sys.stdout.write(json.dumps({"name": result.name, "key": result.key, "stored": result.stored}) + "\n")
    elif not result.stored:
        sys.stderr.write(f"{result.name} was already archived with the same content\n")
    return 0


def fetch_status(fetch: Callable[[], bool]) -> int:
    """0 written, FETCH_ABSENT when `fetch` says the archive has no such file, FETCH_ERROR
    for every failure (drkit's own errors, OSError, anything unexpected), with one line."""
    try:
        return 0 if fetch() else FETCH_ABSENT
    except DrkitError as exc:
        message = exc.message
    except OSError as exc:
        message = f"{exc.filename or 'wal-fetch'}: {exc.strerror or exc}"
    except Exception as exc:
        message = f"unexpected {type(exc).__name__}: {exc}"
    first = (message.strip().splitlines() or [""])[0]
    sys.stderr.write(f"error: {first}\n")
    return FETCH_ERROR
