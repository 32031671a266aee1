"""`drkit backups keep ID [--until T] [--reason TEXT] | --release`: pin a backup so that prune
never removes it (like `barman keep`)."""

from __future__ import annotations

from datetime import datetime

import typer

from drkit.cli.backup_cmds import backups_app
from drkit.cli.context import options
from drkit.cli.render import console, emit_json
from drkit.domain.durations import parse_duration
from drkit.domain.errors import UsageError
from drkit.domain.recovery import parse_target_time


def keep_cmd(
    ctx: typer.Context,
    backup_id: str = typer.Argument(..., help="The backup to pin (an id from `drkit backups list`)."),
    until: str = typer.Option(
        None, "--until", help="Keep it until then: a duration from now (30d, 12w) or a time (2027-01-31)."
    ),
    reason: str = typer.Option("", "--reason", help="Why it is kept (shown by `backups list` and prune)."),
    release_: bool = typer.Option(False, "--release", help="Remove the pin: retention decides again."),
) -> None:
    """Pin a backup: `drkit prune` never removes it while the pin holds (until --until, or
    until released). A pinned PostgreSQL base backup keeps the WAL it needs to be consistent.
    Incident evidence (a db-corruption recovery's emergency dump) is pinned this way.

    Examples:
      drkit backups keep 20261125T020000Z-base --reason "before the schema migration"
      drkit backups keep 20261125T020000Z-base --until 90d
      drkit backups keep 20261125T020000Z-base --release
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.keep import keep_backup, release_backup

    opts = options(ctx)
    if release_ and (until or reason):
        raise UsageError("--release takes no --until or --reason")
    ws = open_workspace(opts.stack())
    if release_:
        if opts.dry_run:
            console.print(f"would release the pin of {backup_id}")
            return
        manifest, was = release_backup(ws, backup_id)
        if opts.json:
            emit_json({"backup_id": manifest.backup_id, "service": manifest.service, "released": was})
        elif was is None:
            console.print(f"{manifest.backup_id} ({manifest.service}) was not pinned")
        else:
            console.print(f"released {manifest.backup_id} ({manifest.service}): {was.describe()}")
        return
    when = _until(until, ws.clock.now()) if until else None
    if opts.dry_run:
        console.print(f"would pin {backup_id}" + (f" until {when.isoformat()}" if when else ""))
        return
    manifest, made = keep_backup(ws, backup_id, reason=reason or "pinned by `drkit backups keep`", until=when)
    if opts.json:
        emit_json(made.to_dict())
    else:
        console.print(f"pinned {manifest.backup_id} ({manifest.service}): {made.describe()}")


def _until(text: str, now: datetime) -> datetime:
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_target_time(text)
    except ValueError:
        raise UsageError(
            f"--until {text!r}: give a duration from now (30d, 12w) "
            "or a time (2027-01-31, 2027-01-31T12:00:00Z)"
        ) from None


def register(app: typer.Typer) -> None:
    del app  # the command belongs to `drkit backups`
    backups_app.command("keep")(keep_cmd)
