"""`drkit drill SCENARIO|--all|--rotation`: recoveries rehearsed for real, measured."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from drkit.cli.context import Options, options
from drkit.cli.recover_cmds import print_step
from drkit.cli.render import console, emit_json, table
from drkit.domain.errors import ExitCode, UsageError
from drkit.domain.journal import Journal, Verdict

if TYPE_CHECKING:
    from drkit.engines.core.workspace import Workspace


def drill_cmd(
    ctx: typer.Context,
    scenario: str = typer.Argument(
        None, help="db-corruption, service-redis, service-s3, data-loss or full-outage."
    ),
    all_: bool = typer.Option(
        False, "--all", help="Every scenario of the monthly rotation, one after the other."
    ),
    rotation: bool = typer.Option(False, "--rotation", help="This week's scenario of the monthly rotation."),
    target: str = typer.Option(
        "isolated", "--target", help="isolated (a copy restored from the backups) or live (with --yes)."
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the isolated copy's directory afterwards."),
    report: str = typer.Option(None, "--report", help="Write each drill's HTML report into this directory."),
    pg_bin_dir: str = typer.Option(
        None,
        "--pg-bin-dir",
        help="PostgreSQL server binaries for the isolated copy (default: the live runtime's bin_dir, "
        "else /usr/lib/postgresql/MAJOR/bin for the major of the newest base backup).",
    ),
) -> None:
    """Break a copy of the stack for real, recover it with the scenario's runbook, compare it
    with its state before the failure, and measure each service's RTO and RPO against its
    targets. Exit 1 when a recovery failed, 4 when a target was missed.

    Examples:
      drkit drill db-corruption
      drkit drill --all
      drkit drill data-loss --target live --yes     (breaks the configured stack itself)
    """
    from drkit.cli.restore_cmds import drkit_argv
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.drills.run import DRILLS, KNOWN, DrillRequest, LiveEnvironment, rotation_for, run_drill
    from drkit.sandbox.drill_env import IsolatedSandbox

    opts = options(ctx)
    chosen = _chosen(scenario, all_, rotation, DRILLS, KNOWN)
    if target not in ("isolated", "live"):
        raise UsageError("--target is isolated or live")
    if target == "live" and not opts.yes:
        raise UsageError("--target live breaks the configured stack for real: add --yes if you mean it")
    ws = open_workspace(opts.stack())
    if rotation:
        chosen = [rotation_for(ws.clock.now())]
    if opts.dry_run:
        where = "the live stack"
        if target == "isolated":  # the copy is restored from the newest set: there must be one
            from drkit.engines.core.set_refs import find_set

            newest = find_set(ws, None)
            where = (
                f"an isolated copy restored from set {newest.set_id} ({newest.created_at:%Y-%m-%d %H:%M} UTC)"
            )
        console.print(f"would drill {', '.join(chosen)} on {where}")
        return
    say = (lambda _m: None) if opts.json else (lambda m: console.print(f"    {m}"))
    results: list[Journal] = []
    for name in chosen:
        env = IsolatedSandbox(keep=keep, pg_bin_dir=pg_bin_dir) if target == "isolated" else LiveEnvironment()
        if not opts.json:
            console.print(f"[bold]drill {name}[/bold] ({target})")
        results.append(
            run_drill(
                ws,
                env,
                DrillRequest(name, tuple(drkit_argv())),
                say=say,
                on_step=None if opts.json else print_step,
            )
        )
    if report:
        for path in write_reports(ws, results, report):
            if not opts.json:
                console.print(f"report: {path}")
    summary(opts, results)


def write_reports(ws: Workspace, results: list[Journal], directory: str) -> list[Path]:
    """One self-contained HTML report per drill, with the trend of the stored journals."""
    from drkit.cli.report_render import render
    from drkit.engines.core.journals import list_journals
    from drkit.engines.reports.build import build_report

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    history, _damaged = list_journals(ws)
    paths = []
    for journal in results:
        path = out / f"{journal.run_id}.html"
        path.write_text(render(build_report(journal, history), "html"))
        paths.append(path)
    return paths


def _chosen(
    scenario: str | None, all_: bool, rotation: bool, rotation_set: tuple[str, ...], known: tuple[str, ...]
) -> list[str]:
    if sum(bool(x) for x in (scenario, all_, rotation)) != 1:
        raise UsageError("name one scenario, or --all, or --rotation")
    if scenario and scenario not in known:
        raise UsageError(f"no drill {scenario!r} (known: {', '.join(known)})")
    return list(rotation_set) if all_ else [scenario] if scenario else []


def summary(opts: Options, results: list[Journal]) -> None:
    if opts.json:
        emit_json([j.to_dict() for j in results])
    else:
        rows = []
        for j in results:
            for m in j.measures or ():
                rows.append(
                    (
                        j.scenario,
                        m.service,
                        _s(m.rto_seconds),
                        _s(m.rto_target),
                        _s(m.rpo_seconds),
                        _s(m.rpo_target),
                        "MISSED" if m.missed else "met",
                    )
                )
            if not j.measures:
                rows.append((j.scenario, "-", "-", "-", "-", "-", j.verdict.value))
        table("drills", ["scenario", "service", "RTO", "target", "RPO", "target", "verdict"], rows)
        for j in results:
            console.print(
                f"{j.scenario}: {j.verdict.value}{f' ({j.error})' if j.error else ''}; journal {j.run_id}"
            )
    if any(j.verdict in (Verdict.FAILED, Verdict.ABORTED) for j in results):
        raise typer.Exit(int(ExitCode.FAILED))
    if any(j.verdict is Verdict.MISSED_TARGET for j in results):
        raise typer.Exit(int(ExitCode.TARGET_MISSED))


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def register(app: typer.Typer) -> None:
    app.command("drill")(drill_cmd)
