"""`drkit schedule run | install | list`: the jobs of stack.yaml at their cron times."""

from __future__ import annotations

import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from drkit.cli.context import options
from drkit.cli.render import console, emit_json, err_console, table
from drkit.domain.errors import UsageError

if TYPE_CHECKING:
    from drkit.domain.stack import Stack
    from drkit.engines.ops.notify import Message

schedule_app = typer.Typer(help="Run the scheduled jobs (backups, verify, sync, drills, prune, status).")


def _drkit(stack: Stack) -> list[str]:
    return [sys.executable, "-m", "drkit", "--config", stack.source_path]


@schedule_app.command("run")
def run_cmd(
    ctx: typer.Context,
    once: bool = typer.Option(
        False, "--once", help="Run the jobs due now (this minute, or missed), wait for them, exit."
    ),
    grace: float = typer.Option(90.0, "--grace", help="Seconds a job has to abort after SIGTERM."),
) -> None:
    """Run each job at its times; supervise `wal-stream` where wal_mode is stream. SIGTERM
    aborts running jobs cleanly (SIGINT to each, SIGKILL after --grace) and exits.

    Example: drkit schedule run;  drkit schedule run --once
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.notify import digest
    from drkit.engines.ops.schedule import STATE_FILE, Event, Scheduler
    from drkit.engines.ops.schedule_jobs import job_args, job_locks, jobs_of
    from drkit.engines.ops.schedule_supervise import ChildHandle, stream_supervisors
    from drkit.infra.locks import exclusive

    opts = options(ctx)
    opts.refuse_json(
        "schedule run writes a log, one line per event (`drkit schedule list -o json` for state)"
    )
    ws = open_workspace(opts.stack())
    drkit = _drkit(ws.stack)
    out = sys.stdout.fileno()

    def report(event: Event) -> None:
        console.print(event.line(), markup=False, soft_wrap=True)
        sys.stdout.flush()

    def send(message: Message) -> None:
        _send(ws.stack, message)

    sups = (
        []
        if once
        else stream_supervisors(
            ws, drkit, notify=send, stdout=out, report=lambda n, t: console.print(f"{n}: {t}", markup=False)
        )
    )
    scheduler = Scheduler(
        jobs_of(ws.stack),
        ws.state_dir / STATE_FILE,
        ws.clock,
        lambda job: ChildHandle([*drkit, *job_args(job)], stdout=out),
        notify=send,
        digest=lambda now: digest(ws, until=now),
        report=report,
        supervisors=sups,
        needs=lambda job: job_locks(ws.stack, job),
    )
    signal.signal(signal.SIGTERM, lambda *_: scheduler.stop_requested.set())
    signal.signal(signal.SIGINT, lambda *_: scheduler.stop_requested.set())
    with exclusive(ws.state_dir, "schedule", "schedule run"):
        _say(ws.clock.now(), _started_line(ws.stack, ws.clock.now(), once=once))
        scheduler.run(once=once, grace=grace)
    failed = [e for e in scheduler.events if e.kind in ("failed", "timeout")]
    _say(ws.clock.now(), "stopped" if not once else f"done: {len(failed)} job(s) failed")
    if once and failed:
        raise typer.Exit(1)


def _started_line(stack: Stack, now: datetime, *, once: bool) -> str:
    """What `schedule run` says when it starts: how many jobs, whose, the next one, how to stop."""
    from drkit.engines.ops.schedule_jobs import jobs_of, next_run

    jobs = jobs_of(stack)
    whose = "the defaults" if stack.schedule is None else "stack.yaml's schedule"
    line = f"started: {len(jobs)} job(s) of {stack.name} ({whose})"
    if once:
        return line + ", once: the jobs due now"
    if jobs:
        soonest = min(next_run(job, now) for job in jobs)
        names = ", ".join(job.name for job in jobs if next_run(job, now) == soonest)
        line += f", next: {names} at {soonest:%Y-%m-%d %H:%M} UTC"
    return line + "; SIGTERM or Ctrl-C stops it"


def _say(now: datetime, text: str) -> None:
    """A line of the scheduler's log, in the form of its job events."""
    console.print(f"{now:%Y-%m-%d %H:%M:%S} schedule: {text}", markup=False, soft_wrap=True)
    sys.stdout.flush()


def _send(stack: Stack, message: Message) -> None:
    """Deliver; a notification that cannot go out is said on stderr, never fatal."""
    from drkit.engines.ops.notify import send

    try:
        send(stack, message)
    except Exception as exc:
        err_console.print(f"notification not sent: {type(exc).__name__}", markup=False)


@schedule_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """Each job: its cron, what it runs, its next run, and its last run and result.

    Example: drkit schedule list -o json
    """
    from drkit.engines.ops.schedule import load_state
    from drkit.engines.ops.schedule_jobs import job_args, jobs_of, next_run
    from drkit.infra.clock import SystemClock

    opts = options(ctx)
    stack = opts.stack()
    state = load_state(stack.state_dir)
    now = SystemClock().now()
    rows = []
    for job in jobs_of(stack):
        last = (state.get(job.name) or {}).get("last") or {}
        rows.append(
            {
                "job": job.name,
                "cron": job.cron,
                "command": "drkit " + " ".join(job_args(job)),
                "next": next_run(job, now).isoformat(),
                "last": last.get("started"),
                "result": last.get("result"),
                "detail": last.get("detail", ""),
                "default": stack.schedule is None,
            }
        )
    if opts.json:
        emit_json({"stack": stack.name, "jobs": rows})
        return
    table(
        f"schedule of {stack.name}" + (" (defaults)" if stack.schedule is None else ""),
        ["job", "cron (UTC)", "runs", "next", "last", "result"],
        [
            (r["job"], r["cron"], r["command"], r["next"][:16], (r["last"] or "-")[:19], r["result"] or "-")
            for r in rows
        ],
    )


@schedule_app.command("install")
def install_cmd(
    ctx: typer.Context,
    systemd: bool = typer.Option(False, "--systemd", help="A systemd service for `schedule run` (default)."),
    timers: bool = typer.Option(False, "--timers", help="A systemd timer and oneshot service per job."),
    crontab: bool = typer.Option(False, "--crontab", help="Print crontab lines (install with crontab -)."),
    directory: str = typer.Option("/etc/systemd/system", "--dir", help="Where unit files go."),
) -> None:
    """Install the schedule: a systemd service running `drkit schedule run`, or timers, or
    crontab lines. --dry-run prints the files instead of writing them.

    Example: drkit schedule install --dry-run;  drkit schedule install --crontab | crontab -
    """
    from drkit.engines.ops.schedule_jobs import collisions, crontab_lines, service_unit, timer_units
    from drkit.infra.atomic import write_atomic

    if systemd + timers + crontab > 1:
        raise UsageError("choose one of --systemd, --timers, --crontab")
    opts = options(ctx)
    stack = opts.stack()
    drkit = _drkit(stack)
    if timers or crontab:  # only `schedule run` queues jobs that need one lock
        for pair in collisions(stack):
            err_console.print(
                f"warning: {pair} start together: as separate {'timers' if timers else 'crontab lines'} "
                "one fails on the lock; `schedule run` queues them (or give them other times)",
                markup=False,
            )
    if crontab:
        lines = crontab_lines(stack, drkit)
        if opts.json:
            emit_json({"crontab": lines})
        else:
            console.print("\n".join(lines), markup=False, soft_wrap=True)
        return
    skipped: list[str] = []
    if timers:
        files, skipped = timer_units(stack, drkit)
    else:
        files = {f"drkit-{stack.name}-schedule.service": service_unit(stack, drkit)}
    for name, text in files.items():
        path = Path(directory) / name
        if opts.dry_run:
            console.print(f"# {path}\n{text}", markup=False, soft_wrap=True)
        else:
            write_atomic(path, text.encode())
            console.print(f"wrote {path}", markup=False)
    if opts.json:
        paths = {str(Path(directory) / n): t for n, t in files.items()}
        emit_json({"dry_run": opts.dry_run, "files": paths, "no_timer_for": skipped})
    for job in skipped:
        err_console.print(f"no timer for {job}: OnCalendar cannot say it; use `schedule run`", markup=False)
    units = " ".join(n for n in files if n.endswith(".timer")) or next(iter(files))
    if not opts.dry_run:
        console.print(f"then: systemctl daemon-reload && systemctl enable --now {units}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(schedule_app, name="schedule")
