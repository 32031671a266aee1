"""`drkit backup` and `drkit backups list|show`."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from drkit.cli.context import Options, options, show_plan
from drkit.cli.render import console, duration, emit_json, err_console, human_bytes, table
from drkit.cli.times import operator_time
from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import OperationError, UsageError
from drkit.engines.core.workspace import Workspace
from drkit.engines.stack.backup import ServiceOutcome
from drkit.infra.clock import local_zone

if TYPE_CHECKING:
    from drkit.domain.sets import RestoreSet
    from drkit.engines.core.pins import Pin
    from drkit.engines.ops.windows import RecoveryWindow

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
    """Take a backup; it counts once its manifest is written. Each service is backed up in
    turn: one that fails (its server down) does not stop the others; a table shows each
    service's result, and the exit code is 1 when one failed.

    Example: drkit backup postgres --type base;  drkit backup postgres --type incremental;
    drkit backup --all
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.stack.backup import backup_each, check_request, choose_services

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    if all_:
        if services:
            raise UsageError("--all backs up every service; name none")
        if type_ not in ("base", "incremental"):
            raise UsageError(f"--all --type {type_}: a set's PostgreSQL part is base or incremental")
        _backup_set(opts, ws, type_)
        return
    targets = choose_services(ws.stack, services)
    check_request(targets, type_)  # a dry run refuses what the run would
    if opts.dry_run:
        text = "\n".join(f"would back up {s.name} ({s.kind}) into {ws.repo.location}" for s in targets)
        would = [{"service": s.name, "kind": s.kind} for s in targets]
        show_plan(opts, text, {"repository": ws.repo.location, "would_back_up": would})
        return
    outcomes = backup_each(
        ws,
        targets,
        postgres_type=type_,
        progress=opts.progress,
        on_done=None if opts.json else (lambda o: _print_outcome(o, alone=len(targets) == 1)),
    )
    if opts.json:  # one document: each entry says ok or its error; the exit code says the rest
        emit_json([_outcome_json(o) for o in outcomes])
        if not all(o.ok for o in outcomes):
            raise typer.Exit(1)
        return
    _outcome_table(outcomes)
    _fail_if_any(outcomes)


def _backup_set(opts: Options, ws: Workspace, postgres_type: str) -> None:
    from drkit.cli.restore_cmds import drkit_argv
    from drkit.domain.errors import DrkitError
    from drkit.engines.stack.sets import backup_set

    if opts.dry_run:
        names = sorted(ws.stack.services)
        text = "would record a stack-wide restore point of: " + ", ".join(names)
        show_plan(opts, text, {"would_record_set_of": names})
        return
    outcomes: list[ServiceOutcome] = []
    try:
        result = backup_set(
            ws,
            say=(lambda _m: None) if opts.json else console.print,
            drkit_argv=drkit_argv(),
            on_done=outcomes.append,
            progress=opts.progress,
            postgres_type=postgres_type,
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


def _print_outcome(o: ServiceOutcome, *, alone: bool = False) -> None:
    if o.result is not None:
        _print_result(o.result.manifest, o.result.seconds, o.result.removed_incomplete)
    elif o.error is not None and not alone:  # alone, the final error says it once
        line = f"[red]backup of {escape(o.service)} failed:[/red] {escape(o.error)}"
        err_console.print(line, soft_wrap=True)


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
        rows.append((o.service, o.kind, state, what, size, duration(o.seconds)))
    table("backup results", ["service", "kind", "result", "backup / error", "stored", "took"], rows)


def _fail_if_any(outcomes: list[ServiceOutcome]) -> None:
    failed = [o.service for o in outcomes if not o.ok]
    if len(outcomes) == 1 and failed:
        raise OperationError(f"backup of {outcomes[0].service} failed: {outcomes[0].error}")
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
        f"{human_bytes(m.raw_bytes)} -> {human_bytes(m.stored_bytes)} in {duration(seconds)}"
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


def _kind_label(m: Manifest) -> str:
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
    since: str = typer.Option(
        None, "--since", help="Only backups finished since then (2026-11-25, yesterday 02:00, -7d)."
    ),
    latest: int = typer.Option(None, "--latest", min=1, help="Only the newest N backups of each service."),
    kind: str = typer.Option(
        None, "--kind", help="Only this kind: base, logical, rdb, objects, dump or metadata."
    ),
) -> None:
    """Every complete backup, oldest first, and per service the moments it can be restored to
    (`restorable from ... to ...`, in this host's time zone); `--output json` for scripts.

    Examples: drkit backups list;  drkit backups list --service postgres --latest 3;
    drkit backups list --kind base --since -7d
    """
    from drkit.engines.core.catalog import list_backups
    from drkit.engines.core.chains import Catalog, broken_chains
    from drkit.engines.core.pins import pins_of
    from drkit.engines.core.set_refs import list_sets
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.windows import recovery_windows

    opts = options(ctx)
    wanted = _kind(kind)
    after = operator_time("--since", since, say=not opts.quiet) if since else None
    ws = open_workspace(opts.stack())
    names = [ws.stack.service(service).name] if service else sorted(ws.stack.services)
    sets = [] if service or wanted else [s for s in list_sets(ws) if after is None or s.created_at >= after]
    complete: dict[str, list[Manifest]] = {}
    incomplete: list[str] = []
    damaged: list[dict[str, str]] = []
    pins: dict[str, Pin] = {}  # `drkit backups keep`, and incident evidence
    broken: list[dict[str, str]] = []
    for name in names:
        listing = list_backups(ws.repo, ws.stack.name, name)
        complete[name] = list(listing.complete)
        pins.update(pins_of(ws, name, [m.backup_id for m in listing.complete]))
        incomplete.extend(f"{name}/{i}" for i in listing.incomplete)
        damaged.extend(
            {"service": name, "backup_id": d.backup_id, "reason": d.reason} for d in listing.damaged
        )
        catalog = Catalog.of(listing.complete, ((d.backup_id, d.reason) for d in listing.damaged))
        broken.extend(
            {"service": name, "backup_id": i, "link": e.link, "reason": e.message}
            for i, e in sorted(broken_chains(catalog).items())
        )
    windows = recovery_windows(ws, complete)
    manifests = _chosen(complete, wanted, after, latest)
    if opts.json:
        emit_json(
            {
                "backups": [
                    {**m.to_dict(), "pin": pins[m.backup_id].to_dict() if m.backup_id in pins else None}
                    for m in manifests
                ],
                "incomplete": incomplete,
                "damaged": damaged,
                "broken_chains": broken,
                "sets": [s.to_dict() for s in sets],
                "windows": windows,
            }
        )
        return
    _print_listing(ws, manifests, sets, windows, pins)
    for item in incomplete:
        console.print(f"[yellow]incomplete (no manifest, not a backup):[/yellow] {item}")
    for bad in damaged:
        what = escape(f"{bad['service']}/{bad['backup_id']}: {bad['reason']}")
        console.print(f"[red]damaged (skipped):[/red] {what}", highlight=False)
    for bad in broken:
        what = escape(f"{bad['service']}/{bad['backup_id']}: {bad['reason']}")
        console.print(f"[red]chain broken (cannot restore):[/red] {what}", highlight=False)


def _kind(text: str | None) -> BackupKind | None:
    if text is None:
        return None
    try:
        return BackupKind(text)
    except ValueError:
        known = ", ".join(k.value for k in BackupKind)
        raise UsageError(f"--kind {text!r}: use one of {known}") from None


def _chosen(
    complete: dict[str, list[Manifest]], kind: BackupKind | None, after: datetime | None, latest: int | None
) -> list[Manifest]:
    out: list[Manifest] = []
    for found in complete.values():
        picked = [
            m for m in found if (kind is None or m.kind is kind) and (after is None or m.finished_at >= after)
        ]
        out += picked[-latest:] if latest else picked
    return out


def _print_listing(
    ws: Workspace,
    manifests: list[Manifest],
    sets: list[RestoreSet],
    windows: list[RecoveryWindow],
    pins: dict[str, Pin],
) -> None:
    zone = local_zone()
    rows: list[tuple[str, ...]] = [
        (
            m.backup_id,
            m.service,
            _kind_label(m),
            _local(m.finished_at, zone),
            human_bytes(m.stored_bytes),
            "yes" if m.encrypted else "no",
            f"{m.postgres.start_lsn}..{m.postgres.stop_lsn}" if m.postgres else "",
        )
        for m in manifests
    ]
    columns = ["id", "service", "kind", "finished", "stored", "encrypted", "WAL"]
    if any(m.parent_id for m in manifests):  # incremental backups: the backup each is built on
        columns.append("on (parent)")
        rows = [(*r, m.parent_id or "") for r, m in zip(rows, manifests, strict=True)]
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
        set_rows = [(s.set_id, _local(s.created_at, zone), s.restore_point, _refs(s.backups)) for s in sets]
        table("stack-wide sets", ["set", "moment", "restore point", "backups"], set_rows)
    table(
        f"recovery windows (times in {getattr(zone, 'key', zone)})",
        ["service", "restorable", "how"],
        [(w.service, _window_text(w, zone), w.detail) for w in windows],
    )


def _window_text(w: RecoveryWindow, zone: tzinfo) -> str:
    if w.earliest is None or w.latest is None:
        return "nothing"
    first, last = _local(w.earliest, zone), _local(w.latest, zone)
    if w.earliest == w.latest:
        return f"at {first}"
    if first == last:  # a window within one second (WAL archived right after the backup)
        first, last = _local(w.earliest, zone, ".%f"), _local(w.latest, zone, ".%f")
    if first[:10] == last[:10]:
        last = last[11:]
    if w.continuous:
        return f"from {first} to {last}"
    return f"at {w.points} points, from {first} to {last}"


def _local(moment: datetime, zone: tzinfo, fraction: str = "") -> str:
    text = moment.astimezone(zone).strftime(f"%Y-%m-%d %H:%M:%S{fraction}")
    return text[:-3] if fraction else text  # milliseconds


def _refs(backups: dict[str, str]) -> str:
    return ", ".join(f"{svc}: {backup_id}" for svc, backup_id in sorted(backups.items()))


@backups_app.command("show")
def show_cmd(
    ctx: typer.Context,
    backup_id: str = typer.Argument(..., help="Backup id, a unique start of one, or `latest`."),
) -> None:
    """One backup's manifest: files, hashes, LSNs, versions.

    Example: drkit backups show 20261125T020000Z-base;  drkit backups show latest
    """
    from drkit.engines.core.catalog import resolve_backup
    from drkit.engines.core.workspace import open_workspace

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    m = resolve_backup(ws.repo, ws.stack.name, sorted(ws.stack.services), backup_id, now=ws.clock.now())
    if opts.json:
        emit_json(m.to_dict())
        return
    console.print(f"backup {m.backup_id} ({m.kind.value}) of {m.stack}/{m.service}")
    took = duration(m.finished_at - m.started_at)
    console.print(f"  started {m.started_at.isoformat()}  finished {m.finished_at.isoformat()} ({took})")
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
    table(None, ["file", "stored", "sha256"], [(f.name, human_bytes(f.size), f.sha256) for f in m.files])


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_cmd)
    app.add_typer(backups_app, name="backups")
