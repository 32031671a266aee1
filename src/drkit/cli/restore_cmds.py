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
from drkit.domain.stack import Service
from drkit.domain.wal import Lsn
from drkit.engines.core.workspace import Workspace


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
    from drkit.engines.core.catalog import find_backup
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.stack.verify import verify_backup

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
    service: str = typer.Argument(None, help="The service to restore (e.g. postgres, redis)."),
    backup_id: str = typer.Option(
        None, "--backup", help="Backup id (default: the newest that can reach the target)."
    ),
    target_time: str = typer.Option(None, "--target-time", help="ISO 8601 time; naive = UTC."),
    target_lsn: str = typer.Option(None, "--target-lsn", help="PostgreSQL: a WAL position like 0/3000060."),
    target_name: str = typer.Option(None, "--target-name", help="PostgreSQL: a named restore point."),
    to: str = typer.Option(
        None,
        "--to",
        help="Restore into this new directory (PostgreSQL; Redis: the checked files) or bucket "
        "(objects) instead of the live one.",
    ),
    in_place: bool = typer.Option(
        False, "--in-place", help="PostgreSQL: replace the live data directory (moved aside, never deleted)."
    ),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="With --to: leave the restored server running."
    ),
    prefix: str = typer.Option(None, "--prefix", help="Objects: only keys under this prefix."),
    set_id: str = typer.Option(None, "--set", help="The whole stack, to a set from `drkit backup --all`."),
    all_: bool = typer.Option(False, "--all", help="The whole stack, to --target-time."),
) -> None:
    """Restore a service, or the whole stack to one moment.

    Examples:
      drkit restore postgres --target-time "2026-02-09 14:30:00Z" --to /srv/pg-restored
      drkit restore redis --yes
      drkit restore --set 20261125T020000Z-set --yes
    """
    opts = options(ctx)
    if set_id or all_:
        if service:
            raise UsageError("--set/--all restore every service; name none")
        _restore_stack(opts, set_id, target_time, all_)
        return
    if not service:
        raise UsageError("name a service to restore, or use --set ID / --all --target-time T")
    from drkit.engines.core.workspace import open_workspace

    ws = open_workspace(opts.stack())
    if service not in ws.stack.services:
        raise UsageError(f"no service {service!r} in {ws.stack.source_path}")
    svc = ws.stack.services[service]
    if svc.kind != "postgres":
        _restore_other(opts, ws, svc, backup_id, target_time, to, prefix)
        return
    target = _target(target_time, target_lsn, target_name)
    _restore_postgres(opts, ws, svc, target, backup_id, Path(to) if to else None, in_place, keep_running)


def _restore_postgres(
    opts: Options,
    ws: Workspace,
    svc: Service,
    target: RecoveryTarget,
    backup_id: str | None,
    to: Path | None,
    in_place: bool,
    keep_running: bool,
) -> None:
    from drkit.engines.postgres.restore import RestoreRequest, plan, restore

    if in_place and to is not None:
        raise UsageError("give --to DIR or --in-place, not both")
    if not in_place and to is None:
        raise UsageError("say where to restore: --to DIR (safe, the default way) or --in-place --yes")
    request = RestoreRequest(
        target=target, backup_id=backup_id, to=to, in_place=in_place, keep_running=keep_running
    )
    chosen = plan(ws, svc, request)
    where = f"in place over {svc.runtime.data_dir}" if in_place else f"into {to}"
    if not opts.json:
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
        _confirm(opts, f"stop {svc.name} and replace {svc.runtime.data_dir} (it is moved aside)?")
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


def _restore_other(
    opts: Options,
    ws: Workspace,
    svc: Service,
    backup_id: str | None,
    target_time: str | None,
    to: str | None,
    prefix: str | None,
) -> None:
    from drkit.engines.core.registry import engine_for
    from drkit.engines.core.types import RestoreOptions

    when = _target(target_time, None, None).time
    engine = engine_for(svc)
    if opts.dry_run:
        console.print(f"would restore {svc.name} ({svc.kind}) from {backup_id or 'the newest backup'}")
        return
    if not to:
        _confirm(opts, f"replace the live data of {svc.name}?")
    options_ = RestoreOptions(backup_id=backup_id, target_time=when, yes=opts.yes, to=to, prefix=prefix)
    result = engine.restore(ws, svc, options_)
    failed = [c for c in result.checks if c.failed_critically]
    if opts.json:
        emit_json({"ok": not failed, **result.__dict__})
    else:
        console.print(
            f"[green]restored[/green] {svc.name} from {result.backup_id} in {result.seconds:.1f}s: "
            f"{result.detail}"
        )
        if result.checks:
            table(
                None,
                ["check", "status", "detail"],
                [(c.name, status_text(c.status.value), c.detail) for c in result.checks],
            )
    if failed:
        raise typer.Exit(3)


def _restore_stack(opts: Options, set_id: str | None, target_time: str | None, all_: bool) -> None:
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.stack.restore import plan_stack, restore_stack

    ws = open_workspace(opts.stack())
    when = None
    if all_:
        if not target_time:
            raise UsageError("--all needs --target-time T (or use --set ID)")
        when = _target(target_time, None, None).time
    elif target_time:
        raise UsageError("--set restores to the set's moment; --target-time goes with --all")
    stack_plan = plan_stack(ws, set_id=set_id, target_time=when)  # refuses before anything is touched
    if opts.dry_run:
        if opts.json:
            emit_json(
                {
                    "dry_run": True,
                    "set_id": stack_plan.set_id,
                    "target": stack_plan.target,
                    "moment": stack_plan.moment,
                    "steps": stack_plan.steps,
                }
            )
        else:
            table(
                f"would restore every service in place to {stack_plan.target}, in this order",
                ["service", "kind", "from", "to"],
                [(p.service, p.kind, p.backup_id or "(newest copies)", p.detail) for p in stack_plan.steps],
            )
        return
    _confirm(opts, f"replace the live data of every service with its state at {stack_plan.target}?")
    say = (lambda _m: None) if opts.json else console.print
    report = restore_stack(ws, stack_plan, drkit_argv=drkit_argv(), say=say)
    if opts.json:
        emit_json({"ok": report.ok, **report.__dict__})
    else:
        table(
            f"stack restored to {report.target}",
            ["service", "backup", "time", "result"],
            [(s.service, s.backup_id, f"{s.seconds:.1f}s", s.detail) for s in report.steps],
        )
        if report.checks:
            table(
                "cross-service checks",
                ["check", "status", "detail"],
                [(c.name, status_text(c.status.value), c.detail) for c in report.checks],
            )
        console.print(
            ("[green]stack restored[/green]" if report.ok else "[red]stack restore failed[/red]")
            + f" in {report.seconds:.1f}s"
        )
    if not all(s.ok for s in report.steps):
        raise typer.Exit(1)
    if not report.ok:
        raise typer.Exit(3)


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
