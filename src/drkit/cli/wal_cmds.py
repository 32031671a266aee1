"""`drkit wal-push`, `wal-fetch`, `wal-stream`: archive_command, restore_command, receiver.

wal-push and wal-fetch run as the database's OS user from PostgreSQL itself, often with a
bare environment: they load the config without requiring every secret to resolve.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import typer

from drkit.cli.context import options
from drkit.cli.render import console, emit_json, err_console


def _service(ctx: typer.Context, name: str | None) -> tuple[object, object]:
    from drkit.engines.workspace import open_workspace

    ws = open_workspace(options(ctx).stack(strict_secrets=False))
    return ws, ws.postgres(name)


def wal_push_cmd(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="The WAL file PostgreSQL hands over (%p)."),
    service: str = typer.Option(None, "--service", help="PostgreSQL service (if several)."),
) -> None:
    """Archive one WAL file: use as archive_command.

    Example (postgresql.conf): archive_command = 'drkit --config /etc/drkit/stack.yaml wal-push %p'
    """
    from drkit.engines.wal import wal_push

    ws, svc = _service(ctx, service)
    result = wal_push(ws, svc, path)  # type: ignore[arg-type]
    if options(ctx).json:
        emit_json({"name": result.name, "key": result.key, "stored": result.stored})
    elif not result.stored:
        err_console.print(f"{result.name} was already archived with the same content")


def wal_fetch_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="WAL file name PostgreSQL asks for (%f)."),
    dest: Path = typer.Argument(..., help="Where to write it (%p)."),
    service: str = typer.Option(None, "--service", help="PostgreSQL service (if several)."),
) -> None:
    """Fetch one WAL file from the archive: use as restore_command. Exit 1 when absent.

    Example: restore_command = 'drkit --config /etc/drkit/stack.yaml wal-fetch %f %p'
    """
    from drkit.domain.errors import DrkitError
    from drkit.engines.wal import wal_fetch

    try:
        ws, svc = _service(ctx, service)
        found = wal_fetch(ws, svc, name, dest)  # type: ignore[arg-type]
    except DrkitError as exc:
        # PostgreSQL reads an exit status below 126 as "not in the archive" and would end
        # recovery there, silently short of the target: anything but absence must abort it.
        err_console.print(f"error: {exc.message}")
        raise typer.Exit(126) from exc
    if not found:
        # PostgreSQL asks for files that may not exist (the next timeline's history).
        raise typer.Exit(1)


def wal_stream_cmd(
    ctx: typer.Context,
    service: str = typer.Option(None, "--service", help="PostgreSQL service (if several)."),
) -> None:
    """Stream WAL continuously with pg_receivewal and a replication slot (RPO about 1 s).
    Runs until SIGTERM or Ctrl-C; completed segments and the current partial go to the archive.

    Example: drkit --config stack.yaml wal-stream
    """
    from drkit.engines.wal import wal_stream

    ws, svc = _service(ctx, service)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def log(message: str) -> None:
        console.print(message)
        sys.stdout.flush()

    wal_stream(ws, svc, stop=stop, log=log)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    app.command("wal-push")(wal_push_cmd)
    app.command("wal-fetch")(wal_fetch_cmd)
    app.command("wal-stream")(wal_stream_cmd)
