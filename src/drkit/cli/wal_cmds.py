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
from drkit.cli.render import console


def _service(ctx: typer.Context, name: str | None) -> tuple[object, object]:
    from drkit.engines.core.workspace import open_workspace

    ws = open_workspace(options(ctx).stack(strict_secrets=False))
    return ws, ws.postgres(name)


def _light(ctx: typer.Context, args: list[str]) -> None:
    """The same code PostgreSQL runs (cli/wal_light.py), reached through the full CLI."""
    from drkit.cli.wal_light import main

    opts = options(ctx)
    code = main([*(["--config", opts.config] if opts.config else []), "--output", opts.output, *args])
    if code:
        raise typer.Exit(code)


def wal_push_cmd(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="The WAL file PostgreSQL hands over (%p)."),
    service: str = typer.Option(None, "--service", help="PostgreSQL service (if several)."),
) -> None:
    """Archive one WAL file: use as archive_command.

    Example (postgresql.conf): archive_command = 'drkit --config /etc/drkit/stack.yaml wal-push %p'
    """
    _light(ctx, ["wal-push", str(path), *(["--service", service] if service else [])])


def wal_fetch_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="WAL file name PostgreSQL asks for (%f)."),
    dest: Path = typer.Argument(..., help="Where to write it (%p)."),
    service: str = typer.Option(None, "--service", help="PostgreSQL service (if several)."),
) -> None:
    """Fetch one WAL file from the archive: use as restore_command. Exit 1 when absent.

    Example: restore_command = 'drkit --config /etc/drkit/stack.yaml wal-fetch %f %p'
    """
    _light(ctx, ["wal-fetch", name, str(dest), *(["--service", service] if service else [])])


def wal_stream_cmd(
    ctx: typer.Context,
    service: str = typer.Option(None, "--service", help="PostgreSQL service (if several)."),
) -> None:
    """Stream WAL continuously with pg_receivewal and a replication slot (RPO about 1 s).
    Runs until SIGTERM or Ctrl-C; completed segments and the current partial go to the archive.

    Example: drkit --config stack.yaml wal-stream
    """
    from drkit.engines.postgres.wal.stream import wal_stream

    options(ctx).refuse_json("wal-stream runs until stopped and writes a log, one line per event")
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
