"""`drkit backup` and `drkit backups list|show`."""

from __future__ import annotations

import typer
from rich.markup import escape

from drkit.cli.context import Options, options
from drkit.cli.progress import byte_progress
from drkit.cli.render import console, emit_json, human_bytes, table
from drkit.domain.backup import Manifest
from drkit.domain.errors import OperationError, UsageError
from drkit.engines.core.workspace import Workspace
from drkit.engines.stack.backup import ServiceOutcome

backups_app = typer.Typer(help="List and inspect backups in the repository.")


def backup_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Services to back up (default: every one drkit can)."),
    type_: str = typer.Option(
        "base",
        "--type",
        "-t",
        help="PostgreSQL: base (physical, for PITR) or logical (pg_dump); MeiliSearch: snapshot "
        "(default: a dump).",
    ),
    all_: bool = typer.Option(
        False, "--all", help="A stack-wide restore point: every service at one moment, as one set."
    ),
) -> None:
    """Take a backup; it counts once its manifest is written. Each service is backed up in
    turn: one that fails (its server down) does not stop the others; a table shows each
    service's result, and the exit code is 1 when one failed.

    Example: drkit backup postgres --type base;  drkit backup --all
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.stack.backup import backup_each, choose_services

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    if all_:
        if services:
            raise UsageError("--all backs up every service; name none")
        _backup_set(opts, ws)
        return
    targets = choose_services(ws.stack, services)
    if opts.dry_run:
        for service in targets:
            console.print(f"would back up {service.name} ({service.kind}) into {ws.repo.location}")
        return
    outcomes = backup_each(
        ws,
        targets,
        postgres_type=type_,
        progress_for=lambda s: byte_progress(f"backup of {s.name}", enabled=not opts.json),
        on_done=None if opts.json else _print_outcome,
    )
    if opts.json:  # one document: each entry says ok or its error; the exit code says the rest
        emit_json([_outcome_json(o) for o in outcomes])
        if not all(o.ok for o in outcomes):
            raise typer.Exit(1)
        return
    _outcome_table(outcomes)
    _fail_if_any(outcomes)


def _backup_set(opts: Options, ws: Workspace) -> None:
    from drkit.cli.restore_cmds import drkit_argv
    from drkit.domain.errors import DrkitError
    from drkit.engines.stack.sets import backup_set

    if opts.dry_run:
        console.print("would record a stack-wide restore point of: " + ", ".join(sorted(ws.stack.services)))
        return
    outcomes: list[ServiceOutcome] = []
    try:
        result = backup_set(
            ws,
            say=(lambda _m: None) if opts.json else console.print,
            drkit_argv=drkit_argv(),
            on_done=outcomes.append,
        )
    except DrkitError:
        if outcomes and not opts.json:
            _outcome_table(outcomes)
        raise
    if opts.json:
        emit_json(result.to_dict())
        return
    _outcome_table(outcomes)
    console.print(
        f"[green]set {result.set_id}[/green] at {result.created_at.isoformat()}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.backups.items()))
    )


def _print_outcome(o: ServiceOutcome) -> None:
    if o.result is not None:
        _print_result(o.result.manifest, o.result.seconds, o.result.removed_incomplete)
    elif o.error is not None:
        console.print(f"[red]backup of {escape(o.service)} failed:[/red] {escape(o.error)}", soft_wrap=True)


def _outcome_json(o: ServiceOutcome) -> dict[str, object]:
    if o.result is not None:
        return {"ok": True, "seconds": o.result.seconds, **o.result.manifest.to_dict()}
    return {"ok": False, "service": o.service, "kind": o.kind, "seconds": o.seconds, "error": o.error}


def _outcome_table(outcomes: list[ServiceOutcome]) -> None:
    """Per service: the result, the backup, its size and time, or the error."""
    if len(outcomes) < 2:
        return
    rows = []
    for o in outcomes:
        m = o.result.manifest if o.result is not None else None
        state = "[green]ok[/green]" if o.ok else "[red]FAILED[/red]"
        what = o.backup_id or "-" if o.ok else escape(o.error or "")
        if o.ok and o.result is None:
            what += " (reused)"
        size = human_bytes(m.stored_bytes) if m is not None else "-"
        rows.append((o.service, o.kind, state, what, size, f"{o.seconds:.1f}s"))
    table("backup results", ["service", "kind", "result", "backup / error", "stored", "took"], rows)


def _fail_if_any(outcomes: list[ServiceOutcome]) -> None:
    failed = [o.service for o in outcomes if not o.ok]
    if failed:
        raise OperationError(
            f"{len(failed)} of {len(outcomes)} service(s) not backed up: {', '.join(failed)}",
            hint="the others were backed up; fix the failed ones and run `drkit backup` for them",
        )


def _print_result(m: Manifest, seconds: float, removed: tuple[str, ...]) -> None:
    for leftover in removed:
        console.print(f"removed incomplete backup {leftover} (left by an interrupted run)")
    line = (
        f"[green]backup {m.backup_id}[/green] of {m.service}: {len(m.files)} files, "
        f"{human_bytes(m.raw_bytes)} -> {human_bytes(m.stored_bytes)} in {seconds:.1f}s"
    )
    if "summary" in m.details:
        line += f": {m.details['summary']}"
    if m.postgres:
        line += f", WAL {m.postgres.start_lsn} .. {m.postgres.stop_lsn} (timeline {m.postgres.timeline})"
    console.print(line)


@backups_app.command("list")
def list_cmd(
    ctx: typer.Context,
    service: str = typer.Option(None, "--service", "-s", help="Only this service."),
) -> None:
    """Every complete backup, oldest first (`--output json` for scripts).

    Example: drkit backups list --service postgres
    """
    from drkit.engines.core.catalog import list_backups
    from drkit.engines.core.pins import Pin, pins_of
    from drkit.engines.core.set_refs import list_sets
    from drkit.engines.core.workspace import open_workspace

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    sets = [] if service else list_sets(ws)
    names = [service] if service else sorted(ws.stack.services)
    manifests: list[Manifest] = []
    incomplete: list[str] = []
    damaged: list[dict[str, str]] = []
    pins: dict[str, Pin] = {}  # `drkit backups keep`, and incident evidence
    for name in names:
        listing = list_backups(ws.repo, ws.stack.name, name)
        manifests.extend(listing.complete)
        pins.update(pins_of(ws, name, [m.backup_id for m in listing.complete]))
        incomplete.extend(f"{name}/{i}" for i in listing.incomplete)
        damaged.extend(
            {"service": name, "backup_id": d.backup_id, "reason": d.reason} for d in listing.damaged
        )
    if opts.json:
        emit_json(
            {
                "backups": [
                    {**m.to_dict(), "pin": pins[m.backup_id].to_dict() if m.backup_id in pins else None}
                    for m in manifests
                ],
                "incomplete": incomplete,
                "damaged": damaged,
                "sets": [s.to_dict() for s in sets],
            }
        )
        return
    rows: list[tuple[str, ...]] = [
        (
            m.backup_id,
            m.service,
            m.kind.value,
            m.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
            human_bytes(m.stored_bytes),
            "yes" if m.encrypted else "no",
            f"{m.postgres.start_lsn}..{m.postgres.stop_lsn}" if m.postgres else "",
        )
        for m in manifests
    ]
    columns = ["id", "service", "kind", "finished (UTC)", "stored", "encrypted", "WAL"]
    if pins:  # what is kept whatever retention says, and why
        columns.append("pinned")
        rows = [
            (*r, pins[m.backup_id].describe() if m.backup_id in pins else "")
            for r, m in zip(rows, manifests, strict=True)
        ]
    if not rows:
        console.print(f"no backups in {ws.repo.location}")
    else:
        table(None, columns, rows)
    if sets:
        set_rows = [
            (s.set_id, s.created_at.strftime("%Y-%m-%d %H:%M:%S"), s.restore_point, _refs(s.backups))
            for s in sets
        ]
        table("stack-wide sets", ["set", "moment (UTC)", "restore point", "backups"], set_rows)
    for item in incomplete:
        console.print(f"[yellow]incomplete (no manifest, not a backup):[/yellow] {item}")
    for bad in damaged:
        what = escape(f"{bad['service']}/{bad['backup_id']}: {bad['reason']}")
        console.print(f"[red]damaged (skipped):[/red] {what}", highlight=False)


def _refs(backups: dict[str, str]) -> str:
    return ", ".join(f"{svc}: {backup_id}" for svc, backup_id in sorted(backups.items()))


@backups_app.command("show")
def show_cmd(ctx: typer.Context, backup_id: str = typer.Argument(..., help="Backup id.")) -> None:
    """One backup's manifest: files, hashes, LSNs, versions.

    Example: drkit backups show 20261125T020000Z-base
    """
    from drkit.engines.core.catalog import find_backup
    from drkit.engines.core.workspace import open_workspace

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    m = find_backup(ws.repo, ws.stack.name, sorted(ws.stack.services), backup_id)
    if opts.json:
        emit_json(m.to_dict())
        return
    console.print(f"backup {m.backup_id} ({m.kind.value}) of {m.stack}/{m.service}")
    console.print(f"  started {m.started_at.isoformat()}  finished {m.finished_at.isoformat()}")
    console.print(
        f"  {human_bytes(m.raw_bytes)} raw, {human_bytes(m.stored_bytes)} stored, "
        f"{m.compression}, encrypted: {'yes' if m.encrypted else 'no'}"
    )
    if m.postgres:
        p = m.postgres
        console.print(
            f"  WAL {p.start_lsn} .. {p.stop_lsn} on timeline {p.timeline}; "
            f"server {p.server_version}; system {p.system_identifier}"
        )
    console.print(f"  tools: {', '.join(f'{k} {v}' for k, v in m.tool_versions.items())}")
    table(None, ["file", "stored", "sha256"], [(f.name, f.size, f.sha256) for f in m.files])


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_cmd)
    app.add_typer(backups_app, name="backups")
