"""`drkit verify` and `drkit restore`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from drkit.cli.context import Options, options
from drkit.cli.progress import byte_progress
from drkit.cli.render import console, emit_json, status_text, table
from drkit.domain.errors import UsageError
from drkit.domain.recovery import RecoveryTarget, TargetKind, parse_target_time
from drkit.domain.wal import Lsn


def drkit_argv() -> list[str]:
    """How PostgreSQL (as its own OS user) runs this drkit: restore_command."""
    return [sys.executable, "-m", "drkit"]


def verify_cmd(
    ctx: typer.Context,
    backup_id: str = typer.Argument(None, help="Backup id (default: --latest)."),
    latest: bool = typer.Option(False, "--latest", help="Verify the newest backup."),
    deep: bool = typer.Option(
        False, "--deep", help="Also restore into a throwaway instance and compare row counts."
    ),
    service: str = typer.Option(None, "--service", help="Service (default: every postgres)."),
) -> None:
    """Re-hash every file against the manifest and check the WAL it needs; exit 3 on problems.

    Example: drkit verify --latest --deep
    """
    from drkit.domain.backup import BackupKind
    from drkit.engines.catalog import find_backup
    from drkit.engines.verify import verify_backup
    from drkit.engines.workspace import open_workspace

    opts = options(ctx)
    if backup_id and latest:
        raise UsageError("give a backup id or --latest, not both")
    ws = open_workspace(opts.stack())
    services = [service] if service else [s.name for s in ws.stack.services_of_kind("postgres")]
    kind = BackupKind.BASE if (backup_id is None and deep) else None
    manifest = find_backup(ws.repo, ws.stack.name, services, backup_id, kind=kind)
    svc = ws.stack.services[manifest.service]
    if opts.dry_run:
        console.print(f"would verify {manifest.backup_id}{' (deep)' if deep else ''}")
        return
    report = verify_backup(ws, svc, manifest, deep=deep, drkit_argv=drkit_argv())
    if opts.json:
        emit_json(
            {
                "backup_id": report.backup_id,
                "service": report.service,
                "deep": deep,
                "ok": report.ok,
                "seconds": report.seconds,
                "results": report.results,
            }
        )
    else:
        table(
            f"verify {report.backup_id}{' (deep)' if deep else ''}",
            ["check", "status", "detail"],
            [(r.name, status_text(r.status.value), r.detail) for r in report.results],
        )
        verdict = "[green]ok[/green]" if report.ok else "[red]FAILED[/red]"
        console.print(f"{verdict} in {report.seconds:.1f}s")
    if not report.ok:
        raise typer.Exit(3)


def _target(time: str | None, lsn: str | None, name: str | None) -> RecoveryTarget:
    given = [x for x in (time, lsn, name) if x]
    if len(given) > 1:
        raise UsageError("give at most one of --target-time, --target-lsn, --target-name")
    try:
        if time:
            return RecoveryTarget(TargetKind.TIME, time=parse_target_time(time))
        if lsn:
            return RecoveryTarget(TargetKind.LSN, lsn=Lsn.parse(lsn))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if name:
        return RecoveryTarget(TargetKind.NAME, name=name)
    return RecoveryTarget()


def restore_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(..., help="The service to restore (e.g. postgres)."),
    backup_id: str = typer.Option(
        None, "--backup", help="Base backup id (default: the newest that can reach the target)."
    ),
    target_time: str = typer.Option(None, "--target-time", help="ISO 8601 time; naive = UTC."),
    target_lsn: str = typer.Option(None, "--target-lsn", help="A WAL position like 0/3000060."),
    target_name: str = typer.Option(None, "--target-name", help="A named restore point."),
    to: Path = typer.Option(None, "--to", help="Restore into this new directory (default)."),
    in_place: bool = typer.Option(
        False,
        "--in-place",
        help="Replace the live data directory (moved aside, never deleted); needs --yes.",
    ),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="With --to: leave the restored server running."
    ),
) -> None:
    """Restore PostgreSQL to a point in time: base backup + WAL, PostgreSQL 12+ recovery.

    Example: drkit restore postgres --target-time "2026-02-09 14:30:00Z" --to /srv/pg-restored
    """
    from drkit.engines.restore_postgres import RestoreRequest, plan, restore
    from drkit.engines.workspace import open_workspace

    opts = options(ctx)
    target = _target(target_time, target_lsn, target_name)
    if in_place and to is not None:
        raise UsageError("give --to DIR or --in-place, not both")
    if not in_place and to is None:
        raise UsageError("say where to restore: --to DIR (safe, the default way) or --in-place --yes")
    ws = open_workspace(opts.stack())
    svc = ws.postgres(service)
    request = RestoreRequest(
        target=target, backup_id=backup_id, to=to, in_place=in_place, keep_running=keep_running
    )
    chosen = plan(ws, svc, request)
    where = f"in place over {svc.runtime.data_dir}" if in_place else f"into {to}"
    console.print(
        f"plan: backup {chosen.backup.backup_id} + WAL {chosen.first_segment}.."
        f"{chosen.last_segment or '?'} -> {target.describe()}, {where}"
    )
    if opts.dry_run:
        if opts.json:
            emit_json(
                {
                    "backup_id": chosen.backup.backup_id,
                    "target": target.describe(),
                    "first_segment": chosen.first_segment,
                    "last_segment": chosen.last_segment,
                }
            )
        return
    if in_place:
        _confirm(opts, f"stop {service} and replace {svc.runtime.data_dir} (it is moved aside)?")
    with byte_progress(f"restoring {chosen.backup.backup_id}", enabled=not opts.json) as progress:
        outcome = restore(ws, svc, request, drkit_argv=drkit_argv(), progress=progress)
    if opts.json:
        emit_json({**outcome.__dict__, "seconds": outcome.seconds})
        return
    console.print(
        f"[green]restored[/green] {outcome.backup_id} to {outcome.target} "
        f"in {outcome.seconds:.1f}s into {outcome.data_dir}"
    )
    reached = outcome.reached_time.isoformat() if outcome.reached_time else "no transaction replayed"
    console.print(
        f"  reached LSN {outcome.reached_lsn}, last transaction {reached}, timeline {outcome.timeline}"
    )
    if outcome.moved_aside:
        console.print(f"  the previous data directory is kept at {outcome.moved_aside}")
    if outcome.running:
        console.print(f"  running on port {outcome.port}")


def _confirm(opts: Options, question: str) -> None:
    if opts.yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Refusing without --yes (no terminal to ask on)")
    if not typer.confirm(question):
        raise typer.Abort()


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)
    app.command("restore")(restore_cmd)
