"""`drkit report JOURNAL` and `drkit drills list`: reports rendered from the journals."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from drkit.cli.context import Options, options
from drkit.cli.render import console, emit_json
from drkit.domain.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from drkit.domain.journal import Journal
    from drkit.engines.reports.model import Gauge, RunSummary

drills_app = typer.Typer(help="The stored drill and recovery journals.", no_args_is_help=True)


def report_cmd(
    ctx: typer.Context,
    journal: str = typer.Argument(..., help="A journal file (.json) or a run id.", metavar="JOURNAL"),
    fmt: str = typer.Option(
        None, "--format", "-f", help="html, md or json (default: html; json with --output json)."
    ),
    out: Path = typer.Option(None, "--out", help="Write the report to FILE instead of stdout."),
) -> None:
    """Render a drill's or a recovery's journal as a report: the verdict per service, RTO and
    RPO against target, the steps' timeline, the environment, and the trend over the stored
    runs of the same scenario. The HTML is one self-contained file (no network to view it).

    A run id is looked up on this host, then in the repository. A journal file needs no
    stack.yaml: the trend is then drawn from the journals beside it.

    Examples:
      drkit report 20261130T031500Z-drill-db-corruption --out report.html
      drkit report state/journals/20261130T031500Z-recovery-data-loss.json --format md
    """
    from drkit.cli.report_render import FORMATS, render
    from drkit.engines.reports.build import build_report
    from drkit.infra.atomic import write_atomic

    opts = options(ctx)
    chosen = fmt or ("json" if opts.json else "html")
    if chosen not in FORMATS:
        raise UsageError(f"--format {chosen}: choose html, md or json")
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out} is a directory: name the report file")
    if out is None and opts.json and chosen != "json":
        raise UsageError(
            f"--output json: --format {chosen} writes {chosen}; use --format json, or --out FILE"
        )
    found, history = _load(opts, journal)
    text = render(build_report(found, history), chosen)
    if out is None:
        typer.echo(text, nl=False)
        return
    write_atomic(out, text.encode(), mode=0o644)
    if opts.json:
        emit_json({"report": str(out), "format": chosen, "run_id": found.run_id, "verdict": found.verdict})
    else:
        console.print(f"{found.verdict.value}: {chosen} report of {found.run_id} written to {out}")


def _load(opts: Options, ref: str) -> tuple[Journal, list[Journal]]:
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.reports import sources

    try:
        opts.config_path()
    except ConfigError:
        if Path(ref).is_file():
            return sources.from_file(Path(ref))
        raise
    ws = open_workspace(opts.stack(strict_secrets=False))
    return sources.from_workspace(ws, ref)


@drills_app.command("list")
def drills_list_cmd(
    ctx: typer.Context,
    scenario: str = typer.Option(None, "--scenario", "-s", help="Only the runs of this scenario."),
) -> None:
    """The stored journals, drills and recoveries, oldest first: verdict and measured RTO/RPO
    per service; damaged journals are listed with the reason.

    Examples:
      drkit drills list
      drkit drills list --scenario db-corruption --output json
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.reports.sources import list_runs

    opts = options(ctx)
    listing = list_runs(open_workspace(opts.stack(strict_secrets=False)), scenario)
    if opts.json:
        emit_json(
            {
                "runs": [_run_json(r) for r in listing.runs],
                "damaged": [{"where": d.where, "reason": d.reason} for d in listing.damaged],
            }
        )
        return
    title = f"journals of {scenario}" if scenario else "journals"
    _runs_table(title, [row for r in listing.runs for row in _run_rows(r)])
    if not listing.runs:
        console.print("no journal stored" + (f" for {scenario}" if scenario else ""))
    for damaged in listing.damaged:
        console.print(f"[red]damaged:[/red] {damaged.where}: {damaged.reason}", soft_wrap=True)


def _runs_table(title: str, rows: list[tuple[str, ...]]) -> None:
    """The run id (what `drkit report` takes) and the figures never fold; the rest may."""
    from rich.table import Table

    out = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for name in (
        "run",
        "kind",
        "scenario",
        "started",
        "took",
        "verdict",
        "service",
        "RTO / target",
        "RPO / target",
    ):
        out.add_column(name, no_wrap=name in ("run", "service", "RTO / target", "RPO / target"))
    for row in rows:
        out.add_row(*row)
    console.print(out)


def _run_rows(run: RunSummary) -> list[tuple[str, ...]]:
    """The run on its first row, then one row per service (its RTO and RPO against target)."""
    from drkit.cli.report_render.figures import duration

    def figure(g: Gauge) -> str:
        if g.seconds is None and g.target is None:
            return "-"
        return f"{duration(g.seconds)} / {duration(g.target)}" + (" MISSED" if g.missed else "")

    head = (
        run.run_id,
        run.kind,
        run.scenario,
        f"{run.started_at:%Y-%m-%d %H:%M:%S}",
        duration(run.seconds),
        run.verdict,
    )
    services = [(s.service, figure(s.rto), figure(s.rpo)) for s in run.services] or [("", "", "")]
    blank = ("",) * len(head)
    return [(*(head if i == 0 else blank), *cells) for i, cells in enumerate(services)]


def _run_json(run: RunSummary) -> dict[str, object]:
    from drkit.cli.render import to_jsonable

    data = to_jsonable(run)
    if not isinstance(data, dict):
        raise TypeError("a run summary renders as an object")
    return data


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
    app.add_typer(drills_app, name="drills")
