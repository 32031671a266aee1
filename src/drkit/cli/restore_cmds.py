"""`drkit restore` (and drkit_argv, how PostgreSQL runs this drkit)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from drkit.cli.context import Options, options, show_plan
from drkit.cli.render import console, duration, emit_json, err_console, status_text, table
from drkit.cli.times import operator_time_iso
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.recovery import RecoveryTarget, target_from_args
from drkit.engines.core.workspace import Workspace

if TYPE_CHECKING:
    from drkit.engines.postgres.logical_restore import PreparedLogicalRestore
    from drkit.engines.postgres.prepare import PreparedRestore
    from drkit.engines.stack.paused import Paused
    from drkit.engines.stack.service_restore import PreparedServiceRestore
    from drkit.engines.stack.start import ServiceStep


def drkit_argv() -> list[str]:
    """How PostgreSQL (as its own OS user) runs this drkit: restore_command."""
    return [sys.executable, "-m", "drkit"]


def _target(
    time: str | None, lsn: str | None, name: str | None, timeline: int | None = None, *, quiet: bool = False
) -> RecoveryTarget:
    try:
        return target_from_args(operator_time_iso("--target-time", time, say=not quiet), lsn, name, timeline)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def restore_cmd(
    ctx: typer.Context,
    service: str = typer.Argument(None, help="The service to restore (e.g. postgres, redis)."),
    backup_id: str = typer.Option(
        None, "--backup", help="Backup id (default: the newest that can reach the target)."
    ),
    target_time: str = typer.Option(
        None,
        "--target-time",
        help="2026-02-09 14:30:00+01:00, ...Z, a time without a zone (read in the local zone; "
        "both are printed), today 14:30, yesterday 14:30, -2h, 10m ago.",
    ),
    target_lsn: str = typer.Option(None, "--target-lsn", help="PostgreSQL: a WAL position like 0/3000060."),
    target_name: str = typer.Option(
        None,
        "--target-name",
        help="PostgreSQL: a named restore point (a set's, or one made with pg_create_restore_point()); "
        "looked up before anything is touched.",
    ),
    timeline: int = typer.Option(
        None,
        "--timeline",
        help="PostgreSQL: the branch of the WAL history to follow, where a later PITR left the "
        "target's (drkit refuses an ambiguous target and names the choices).",
    ),
    to: str = typer.Option(
        None,
        "--to",
        help="Restore into this new directory (PostgreSQL; Redis: the checked files) or bucket "
        "(objects) instead of the live one.",
    ),
    in_place: bool = typer.Option(
        False,
        "--in-place",
        help="PostgreSQL: replace the live data directory; objects in a container: start over from "
        "its emptied volume (the old contents moved aside, never deleted).",
    ),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="With --to: leave the restored server running."
    ),
    prefix: str = typer.Option(None, "--prefix", help="Objects: only keys under this prefix."),
    into_database: str = typer.Option(
        None, "--database", help="PostgreSQL, logical backup: restore the whole dump into this NEW database."
    ),
    tables: list[str] = typer.Option(
        None, "--table", help="PostgreSQL, logical backup: bring back this dropped table (repeatable)."
    ),
    from_database: str = typer.Option(
        None, "--from-database", help="With --database/--table: which database's dump (when several)."
    ),
    leave_dependents: bool = typer.Option(
        False,
        "--leave-dependents",
        help="Do not stop the running services that depend on this one while its live data is "
        "replaced (by default they stop first and start again in order after).",
    ),
    set_id: str = typer.Option(None, "--set", help="The whole stack, to a set from `drkit backup --all`."),
    all_: bool = typer.Option(False, "--all", help="The whole stack, to --target-time."),
) -> None:
    """Restore a service, or the whole stack to one moment.

    Examples:
      drkit restore postgres --target-time "2026-02-09 14:30:00Z" --to /srv/pg-restored
      drkit restore postgres --target-name before_migration --timeline 1 --to /srv/pg-old
      drkit restore redis --yes
      drkit restore minio --in-place --yes                     (nself's MinIO, into its volume)
      drkit restore postgres --table nchat_messages            (from the newest logical backup)
      drkit restore postgres --backup 20261125T020000Z-logical --database nchat_copy
      drkit restore --set 20261125T020000Z-set --yes
    """
    opts = options(ctx)
    if set_id or all_:
        if service:
            raise UsageError("--set/--all restore every service; name none")
        _restore_stack(opts, set_id, target_time, all_, pause=not leave_dependents, timeline=timeline)
        return
    if not service:
        raise UsageError("name a service to restore, or use --set ID / --all --target-time T")
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres.logical_restore import PreparedLogicalRestore
    from drkit.engines.postgres.prepare import PreparedRestore
    from drkit.engines.stack.service_restore import prepare_service_restore

    ws = open_workspace(opts.stack())
    prepared = prepare_service_restore(
        ws,
        service,
        _target(target_time, target_lsn, target_name, timeline, quiet=opts.quiet),
        backup_id=backup_id,
        to=to,
        in_place=in_place,
        keep_running=keep_running,
        prefix=prefix,
        yes=opts.yes,
        into_database=into_database,
        tables=tuple(tables or ()),
        from_database=from_database,
        switch_wal=(lambda m: None if opts.json else console.print(m))
        if opts.yes and not opts.dry_run
        else None,
    )
    if isinstance(prepared, PreparedRestore):
        _restore_postgres(opts, ws, prepared, pause=not leave_dependents)
    elif isinstance(prepared, PreparedLogicalRestore):
        _restore_logical(opts, ws, prepared)
    else:
        _restore_other(opts, ws, prepared, pause=not leave_dependents)


def _restore_postgres(opts: Options, ws: Workspace, prepared: PreparedRestore, *, pause: bool) -> None:
    from drkit.engines.postgres.restore import restore

    if not opts.json:
        console.print(f"plan: {prepared.summary}")
    in_place = prepared.request.in_place
    if opts.dry_run:
        would_pause = _would_pause(ws, [prepared.service.name], enabled=pause and in_place)
        if opts.json:
            emit_json({**prepared.to_dict(), "would_pause": list(would_pause)})
        elif would_pause:
            console.print(f"would stop {', '.join(would_pause)} first and start them again after")
        return
    if prepared.question:
        opts.confirm(prepared.question)
    with _dependents_paused(opts, ws, [prepared.service.name], enabled=pause and in_place) as paused:
        backup_id = prepared.plan.backup.backup_id
        opts.progress.step(f"restore {prepared.service.name} from {backup_id} {prepared.where}")
        outcome = restore(
            ws,
            prepared.service,
            prepared.request,
            drkit_argv=drkit_argv(),
            report=opts.progress,
            planned=prepared.plan,  # the plan shown above, not made a second time
        )
    if opts.json:
        emit_json({**outcome.__dict__, "seconds": outcome.seconds, "dependents": _paused_json(paused)})
        _dependents_exit(paused)
        return
    console.print(
        f"[green]restored[/green] {outcome.backup_id} to {outcome.target} "
        f"in {duration(outcome.seconds)} into {outcome.data_dir}"
    )
    reached = outcome.reached_time.isoformat() if outcome.reached_time else "no transaction replayed"
    console.print(
        f"  reached LSN {outcome.reached_lsn}, last transaction {reached}, timeline {outcome.timeline}"
    )
    if outcome.moved_aside:
        console.print(f"  the previous data directory is kept at {outcome.moved_aside}")
    for note in outcome.notes:
        console.print(f"  {note}", markup=False)
    if outcome.running:
        console.print(f"  running on port {outcome.port}")
    _dependents_exit(paused)


def _restore_logical(opts: Options, ws: Workspace, prepared: PreparedLogicalRestore) -> None:
    if opts.dry_run:
        show_plan(
            opts, f"would {prepared.summary}", {"service": prepared.service.name, "summary": prepared.summary}
        )
        return
    if prepared.question:
        opts.confirm(prepared.question)
    opts.progress.step(prepared.summary)
    result = prepared.run(ws)
    if opts.json:
        emit_json({"ok": True, **result.__dict__})
        return
    what = ", ".join(f"{t} ({n} rows)" for t, n in result.rows.items()) or f"database {result.into}"
    console.print(f"[green]restored[/green] {what} from {result.backup_id} in {duration(result.seconds)}")


def _restore_other(opts: Options, ws: Workspace, prepared: PreparedServiceRestore, *, pause: bool) -> None:
    live = prepared.options.to is None
    if opts.dry_run:
        would_pause = _would_pause(ws, [prepared.service.name], enabled=pause and live)
        text = f"would {prepared.summary}" + (
            f"\nwould stop {', '.join(would_pause)} first and start them again after" if would_pause else ""
        )
        data = {
            "service": prepared.service.name,
            "summary": prepared.summary,
            "would_pause": list(would_pause),
        }
        show_plan(opts, text, data)
        return
    chosen = prepared.choice.describe() if prepared.choice else None
    if chosen and not opts.json:
        console.print(chosen, markup=False)
    if prepared.question:
        opts.confirm(prepared.question)
    with _dependents_paused(opts, ws, [prepared.service.name], enabled=pause and live) as paused:
        opts.progress.step(prepared.summary)
        result = prepared.run(ws)
    failed = [c for c in result.checks if c.failed_critically]
    if opts.json:
        emit_json({"ok": not failed, **result.__dict__, "chosen": chosen, "dependents": _paused_json(paused)})
    else:
        console.print(
            f"[green]restored[/green] {prepared.service.name} from {result.backup_id} "
            f"in {duration(result.seconds)}: {result.detail}"
        )
        if result.checks:
            table(
                None,
                ["check", "status", "detail"],
                [(c.name, status_text(c.status.value), c.detail) for c in result.checks],
            )
    _dependents_exit(paused)
    if failed:
        raise typer.Exit(3)


@contextmanager
def _dependents_paused(
    opts: Options, ws: Workspace, names: Sequence[str], *, enabled: bool
) -> Iterator[Paused]:
    """The running services that depend on `name` stop before its live data is replaced and
    start again in order after (engines/stack/paused.py); `--leave-dependents` skips it."""
    from drkit.engines.stack.paused import Paused, dependents_paused
    from drkit.runtimes.factory import runtime_for

    if not enabled:
        yield Paused(())
        return
    state_dir = ws.stack.state_dir
    step = None if opts.json else _say_step
    with dependents_paused(
        ws.stack, names, runtime_for=lambda s: runtime_for(s, state_dir), on_step=step
    ) as paused:
        yield paused


def _would_pause(ws: Workspace, names: Sequence[str], *, enabled: bool) -> tuple[str, ...]:
    from drkit.engines.stack.paused import running_dependents
    from drkit.runtimes.factory import runtime_for

    if not enabled:
        return ()
    return running_dependents(ws.stack, names, lambda s: runtime_for(s, ws.stack.state_dir))


def _say_step(s: ServiceStep) -> None:
    console.print(f"  {s.status:<9} {s.service} ({duration(s.seconds)}) {s.detail}", markup=False)


def _paused_json(paused: Paused) -> dict[str, object]:
    started = paused.started
    return {"paused": list(paused.services), "started_ok": None if started is None else started.ok}


def _dependents_exit(paused: Paused) -> None:
    """A dependent that did not come back healthy is a failed recovery (exit 1)."""
    if paused.started is not None and not paused.started.ok:
        bad = ", ".join(s.service for s in paused.started.failures)
        raise OperationError(
            f"restored, but {bad} did not come back healthy after it",
            hint="see `drkit health`, then `drkit start` them",
        )


def _restore_stack(
    opts: Options,
    set_id: str | None,
    target_time: str | None,
    all_: bool,
    *,
    pause: bool,
    timeline: int | None = None,
) -> None:
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.stack.restore import plan_stack, restore_stack

    ws = open_workspace(opts.stack())
    when = None
    if all_:
        if not target_time:
            raise UsageError("--all needs --target-time T (or use --set ID)")
        when = _target(target_time, None, None, quiet=opts.quiet).time
    elif target_time:
        raise UsageError("--set restores to the set's moment; --target-time goes with --all")
    timeline = _target(None, None, None, timeline).timeline  # checked as for one service
    # refuses before anything is touched
    stack_plan = plan_stack(ws, set_id=set_id, target_time=when, timeline=timeline)
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
            if would_pause := _would_pause(ws, [p.service for p in stack_plan.steps], enabled=pause):
                console.print(f"would stop {', '.join(would_pause)} first and start them again after")
        return
    restored = [p.service for p in stack_plan.steps]
    opts.confirm(stack_plan.question)
    say = (lambda _m: None) if opts.json else console.print
    # What has nothing to restore but uses what is restored (auth, functions) stops first.
    with _dependents_paused(opts, ws, restored, enabled=pause) as paused:
        report = restore_stack(ws, stack_plan, drkit_argv=drkit_argv(), say=say, progress=opts.progress)
        paused.resume = all(s.ok for s in report.steps)  # a failed service: they stay stopped
    if opts.json:
        emit_json({"ok": report.ok, **report.__dict__, "dependents": _paused_json(paused)})
    else:
        table(
            f"stack restored to {report.target}",
            ["service", "backup", "time", "result"],
            [(s.service, s.backup_id, duration(s.seconds), s.detail) for s in report.steps],
        )
        if report.checks:
            table(
                "cross-service checks",
                ["check", "status", "detail"],
                [(c.name, status_text(c.status.value), c.detail) for c in report.checks],
            )
        console.print(
            ("[green]stack restored[/green]" if report.ok else "[red]stack restore failed[/red]")
            + f" in {duration(report.seconds)}"
        )
    if not all(s.ok for s in report.steps):
        if paused.services:
            err_console.print(
                f"{', '.join(paused.services)} stay stopped: `drkit start` them once it is sound"
            )
        raise typer.Exit(1)
    _dependents_exit(paused)
    if not report.ok:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("restore")(restore_cmd)
