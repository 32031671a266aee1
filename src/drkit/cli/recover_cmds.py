"""`drkit recover SCENARIO`: a recovery runbook, journaled step by step, resumable."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from drkit.cli.context import Options, options
from drkit.cli.render import console, duration, emit_json, status_text, table
from drkit.cli.times import operator_time_iso
from drkit.domain.errors import ExitCode, UsageError
from drkit.domain.journal import Journal, StepRecord, StepStatus, Verdict

if TYPE_CHECKING:
    from drkit.domain.stack import Stack
    from drkit.engines.core.workspace import Workspace
    from drkit.engines.runbooks.model import Runbook

STATUS_STYLE = {"succeeded": "ok", "failed": "failed", "running": "warning", "pending": "warning"}


def recover_cmd(
    ctx: typer.Context,
    scenario: str = typer.Argument(
        None,
        help="db-corruption, full-outage, data-loss, service (then the service's name), "
        "or geo-failover (then, optionally, the standby to promote).",
    ),
    name: str = typer.Argument(None, help="With `service`: the failing service; geo-failover: the standby."),
    target_time: str = typer.Option(
        None,
        "--target-time",
        help="data-loss: the moment just before the loss (2026-11-30 14:05:00Z; without a zone, "
        "the local one; today 14:05; -10m).",
    ),
    in_place: bool = typer.Option(False, "--in-place", help="data-loss: restore the live database to T."),
    copy_back: list[str] = typer.Option(
        None, "--copy-back", help='data-loss, side by side: "TABLE where CONDITION" (repeatable).'
    ),
    since: str = typer.Option(None, "--since", help="When the incident began (for the measured RTO/RPO)."),
    emergency_dump: bool = typer.Option(
        True,
        "--emergency-dump/--no-emergency-dump",
        help="db-corruption: first take a logical dump of what the damaged server still answers "
        "(pinned, kept by prune). Skip it when time matters more than that evidence.",
    ),
    restore: bool = typer.Option(
        False,
        "--restore",
        help="service NAME: restore its newest backup even when it answers after the restart "
        "(its data is lost or wrong).",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted recovery."),
    run_id: str = typer.Option(None, "--run", help="With --resume: which recovery (default: the newest)."),
) -> None:
    """Run a recovery scenario as journaled steps; `--dry-run` shows the plan.

    Every step is written to a journal (this host and the repository) before and after it
    runs; a recovery that was interrupted continues with `--resume`, never repeating a
    completed step. Exit 1 when a step fails, 4 when an RTO/RPO target was missed.

    With --yes, a --target-time later than the archive's last commit (a minute ago, on a
    live primary) makes drkit close the primary's current WAL segment and wait until it is
    archived, showing the segment it waits for.

    Examples:
      drkit --dry-run recover db-corruption
      drkit recover data-loss --target-time "2026-11-30 14:05:00Z" \\
            --copy-back "nchat_messages where channel_id = 'c1'"
      drkit recover service redis --yes;  drkit recover service redis --restore --yes
      drkit recover geo-failover pg2
      drkit recover --resume
    """
    from drkit.cli.restore_cmds import drkit_argv
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.failover.geo import provide
    from drkit.engines.runbooks.recover import RecoverArgs, latest_resumable, prepare, rebuild

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    if not opts.json:  # who to call comes first, before anything can go wrong
        print_escalation(ws.stack)
    provide(ws)  # geo-failover's automatic steps are engines/failover's
    if resume:
        if scenario:
            raise UsageError("--resume continues the recovery its journal names; give no scenario")
        journal = latest_resumable(ws, run_id)
        runbook = rebuild(journal)
    else:
        if not scenario:
            raise UsageError(
                "name a scenario: db-corruption, full-outage, data-loss, service NAME, geo-failover "
                "(or --resume)"
            )
        if name and scenario not in ("service", "geo-failover"):
            raise UsageError(f"{scenario} takes no service name")
        if restore and scenario != "service":
            raise UsageError("--restore is for `recover service NAME`")
        args = RecoverArgs(
            scenario,
            tuple(drkit_argv()),
            target_time=operator_time_iso("--target-time", target_time, say=not opts.quiet),
            in_place=in_place,
            copy_back=tuple(copy_back or ()),
            service=name,  # geo-failover: the standby
            force_restore=restore,
            since=operator_time_iso("--since", since, say=not opts.quiet),
            switch_wal=opts.yes and not opts.dry_run,
            emergency_dump=emergency_dump,
        )
        runbook = prepare(ws, args, say=None if opts.json else lambda m: console.print(f"    {m}"))
        journal = None
    if opts.dry_run:
        _show_plan(
            opts, runbook.scenario, [(s.name, s.title, s.destructive) for s in runbook.steps], runbook.targets
        )
        return
    _run(opts, ws, runbook, journal)


def print_escalation(stack: Stack) -> None:
    """The escalation path and emergency contacts from stack.yaml, in a box (none: nothing)."""
    from drkit.engines.ops.notify import escalation_lines

    lines = escalation_lines(stack)
    if lines:
        console.print("\n".join(lines), markup=False, soft_wrap=True)
        console.print()


def _run(opts: Options, ws: Workspace, runbook: Runbook, journal: Journal | None) -> None:
    from drkit.domain.journal import RunKind
    from drkit.engines.core import journals
    from drkit.engines.runbooks.recover import finish
    from drkit.engines.runbooks.run import execute, new_journal

    destructive = [s.title for s in runbook.destructive]
    if journal is None:
        if destructive:
            opts.confirm("this recovery will:\n  - " + "\n  - ".join(destructive) + "\nproceed?")
        journal = new_journal(ws, runbook, RunKind.RECOVERY)
    elif destructive:
        opts.confirm(f"resume recovery {journal.run_id} from where it stopped?")
    if not opts.json:
        console.print(f"recovery {journal.run_id}: journal {journals.local_path(ws, journal.run_id)}")
    say = (lambda _m: None) if opts.json else (lambda m: console.print(f"    {m}"))
    done = execute(
        ws,
        runbook,
        journal,
        say=say,
        on_step=None if opts.json else step_printer(opts),
        confirm=_asker(opts),
        progress=opts.progress,
    )
    final = finish(ws, done)
    _report(opts, final)


def _asker(opts: Options) -> Callable[[str], bool]:
    from drkit.engines.runbooks.model import AssumeYes

    if opts.yes:  # manual steps record it as assumed, not done
        return AssumeYes()

    def ask(question: str) -> bool:
        if not sys.stdin.isatty():
            return False
        return bool(typer.confirm(question))

    return ask


def step_printer(opts: Options) -> Callable[[StepRecord], None]:
    """Each step as it starts (through the progress reporter: stderr, timestamped when not on
    a terminal, with heartbeats) and as it ends (its outcome, on stdout)."""

    def show(record: StepRecord) -> None:
        if record.status is StepStatus.RUNNING:
            opts.progress.step(f"{record.name}: {record.title}")
        else:
            print_step(record)

    return show


def print_step(record: StepRecord) -> None:
    """A step's outcome (a record that only started is said by step_printer)."""
    if record.status is StepStatus.RUNNING:
        return
    seconds = duration(record.seconds) if record.seconds is not None else ""
    console.print(
        f"  {status_text(STATUS_STYLE.get(record.status.value, record.status.value))} "
        f"{record.name} {seconds}: {record.detail}"
    )


def _report(opts: Options, journal: Journal) -> None:
    if opts.json:
        emit_json(journal.to_dict())
    else:
        rows = [
            (
                m.service,
                _secs(m.rto_seconds),
                _secs(m.rto_target),
                _secs(m.rpo_seconds),
                _secs(m.rpo_target),
                "MISSED" if m.missed else "met",
            )
            for m in journal.measures
        ]
        if rows:
            table("measured", ["service", "RTO", "target", "RPO", "target", "verdict"], rows)
        _breakdown(journal)
        console.print(
            f"{journal.verdict_words()}: {journal.error or 'recovered and verified'} ({journal.run_id})"
        )
        for step in journal.warnings:
            console.print(f"  [yellow]warning[/yellow] {step.name}: {step.detail}", soft_wrap=True)
    if journal.verdict is Verdict.FAILED or journal.verdict is Verdict.ABORTED:
        raise typer.Exit(int(ExitCode.FAILED))
    if journal.verdict is Verdict.MISSED_TARGET:
        raise typer.Exit(int(ExitCode.TARGET_MISSED))


def _breakdown(journal: Journal) -> None:
    from drkit.engines.runbooks.recover import rto_breakdown

    shares = rto_breakdown(journal)
    if shares:
        table(
            "RTO breakdown: where the time went",
            ["step", "took", "share"],
            [
                (t.step, t.note or _secs(t.seconds), f"{t.share:.0%}" if t.seconds is not None else "-")
                for t in shares
            ],
        )


def _show_plan(
    opts: Options, scenario: str, steps: list[tuple[str, str, bool]], targets: dict[str, object]
) -> None:
    if opts.json:
        emit_json(
            {
                "scenario": scenario,
                "targets": targets,
                "steps": [{"name": n, "title": t, "destructive": d} for n, t, d in steps],
            }
        )
        return
    table(
        f"recover {scenario}: the plan",
        ["#", "step", "does", "asks"],
        [(str(i), n, t, "yes" if d else "") for i, (n, t, d) in enumerate(steps, 1)],
    )
    for key, value in targets.items():
        console.print(f"  {key}: {value}")


def _secs(value: float | None) -> str:
    return duration(value)


def register(app: typer.Typer) -> None:
    app.command("recover")(recover_cmd)
