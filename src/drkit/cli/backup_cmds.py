"""`drkit backup` and `drkit backups list|show`."""

from __future__ import annotations

import typer
from rich.markup import escape

from drkit.cli.context import Options, options
from drkit.cli.progress import byte_progress
from drkit.cli.render import console, emit_json, human_bytes, table
from drkit.domain.backup import Manifest
from drkit.domain.errors import UsageError
from drkit.engines.core.workspace import Workspace

backups_app = typer.Typer(help="List and inspect backups in the repository.")


def backup_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Services to back up (default: every one drkit can)."),
    type_: str = typer.Option(
        "base",
        "--type",
        "-t",
        help="PostgreSQL: base (physical, for PITR), incremental (what changed since the newest base "
        "backup, chained to it; a full one when it cannot be) or logical (pg_dump); MeiliSearch: "
        "snapshot (default: a dump).",
    ),
    all_: bool = typer.Option(
        False, "--all", help="A stack-wide restore point: every service at one moment, as one set."
    ),
) -> None:
    """Take a backup; it counts once its manifest is written.

    Example: drkit backup postgres --type base;  drkit backup postgres --type incremental;
    drkit backup --all
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.stack.backup import backup_service, choose_services

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    if all_:
        if services:
            raise UsageError("--all backs up every service; name none")
        _backup_set(opts, ws)
        return
    targets = choose_services(ws.stack, services)
    results = []
    for service in targets:
        if opts.dry_run:
            console.print(f"would back up {service.name} ({service.kind}) into {ws.repo.location}")
            continue
        with byte_progress(f"backup of {service.name}", enabled=not opts.json) as progress:
            result = backup_service(ws, service, postgres_type=type_, progress=progress)
        results.append(result)
        if not opts.json:
            _print_result(result.manifest, result.seconds, result.removed_incomplete)
    if opts.json:
        emit_json([{"seconds": r.seconds, **r.manifest.to_dict()} for r in results])


def _backup_set(opts: Options, ws: Workspace) -> None:
    from drkit.cli.restore_cmds import drkit_argv
    from drkit.engines.stack.sets import backup_set

    if opts.dry_run:
        console.print("would record a stack-wide restore point of: " + ", ".join(sorted(ws.stack.services)))
        return
    result = backup_set(ws, say=(lambda _m: None) if opts.json else console.print, drkit_argv=drkit_argv())
    if opts.json:
        emit_json(result.to_dict())
        return
    console.print(
        f"[green]set {result.set_id}[/green] at {result.created_at.isoformat()}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.backups.items()))
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
    if m.postgres and m.postgres.parent:
        console.print(f"  incremental on {m.postgres.parent} ({_chain_text(m)})")
    elif "full_because" in m.details:
        console.print(f"  a full backup, not an incremental: {m.details['full_because']}")


def _kind(m: Manifest) -> str:
    """`base`, or `incr` (PostgreSQL 17+'s own) / `delta` (drkit's, below 17)."""
    if m.postgres and m.postgres.parent:
        return "incr" if m.postgres.incremental == "native" else str(m.postgres.incremental)
    return m.kind.value


def _chain_text(m: Manifest) -> str:
    pg = m.postgres
    if pg is None or not pg.chain:
        return ""
    return f"link {len(pg.chain)} of the chain from {pg.chain[0]}"


@backups_app.command("list")
def list_cmd(
    ctx: typer.Context,
    service: str = typer.Option(None, "--service", "-s", help="Only this service."),
) -> None:
    """Every complete backup, oldest first (`--output json` for scripts).

    Example: drkit backups list --service postgres
    """
    from drkit.engines.core.catalog import list_backups
    from drkit.engines.core.chains import Catalog, broken_chains
    from drkit.engines.core.set_refs import list_sets
    from drkit.engines.core.workspace import open_workspace

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    sets = [] if service else list_sets(ws)
    names = [service] if service else sorted(ws.stack.services)
    manifests: list[Manifest] = []
    incomplete: list[str] = []
    damaged: list[dict[str, str]] = []
    broken: list[dict[str, str]] = []
    for name in names:
        listing = list_backups(ws.repo, ws.stack.name, name)
        manifests.extend(listing.complete)
        incomplete.extend(f"{name}/{i}" for i in listing.incomplete)
        damaged.extend(
            {"service": name, "backup_id": d.backup_id, "reason": d.reason} for d in listing.damaged
        )
        catalog = Catalog.of(listing.complete, ((d.backup_id, d.reason) for d in listing.damaged))
        broken.extend(
            {"service": name, "backup_id": i, "link": e.link, "reason": e.message}
            for i, e in sorted(broken_chains(catalog).items())
        )
    if opts.json:
        emit_json(
            {
                "backups": [m.to_dict() for m in manifests],
                "incomplete": incomplete,
                "damaged": damaged,
                "broken_chains": broken,
                "sets": [s.to_dict() for s in sets],
            }
        )
        return
    rows = [
        (
            m.backup_id,
            m.service,
            _kind(m),
            m.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
            human_bytes(m.stored_bytes),
            "yes" if m.encrypted else "no",
            f"{m.postgres.start_lsn}..{m.postgres.stop_lsn}" if m.postgres else "",
            (m.postgres.parent or "") if m.postgres else "",
        )
        for m in manifests
    ]
    if not rows:
        console.print(f"no backups in {ws.repo.location}")
    else:
        columns = ["id", "service", "kind", "finished (UTC)", "stored", "encrypted", "WAL", "on (parent)"]
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
    for bad in broken:
        what = escape(f"{bad['service']}/{bad['backup_id']}: {bad['reason']}")
        console.print(f"[red]chain broken (cannot restore):[/red] {what}", highlight=False)


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
        if p.parent:
            console.print(
                f"  incremental ({p.incremental}) on {p.parent}: {' -> '.join((*p.chain, m.backup_id))}"
            )
    console.print(f"  tools: {', '.join(f'{k} {v}' for k, v in m.tool_versions.items())}")
    table(None, ["file", "stored", "sha256"], [(f.name, f.size, f.sha256) for f in m.files])


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_cmd)
    app.add_typer(backups_app, name="backups")
