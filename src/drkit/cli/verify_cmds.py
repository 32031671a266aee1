"""`drkit verify`: backups re-hashed against their manifests (and restored, with --deep)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from drkit.cli.context import Options, options
from drkit.cli.render import console, emit_json, err_console, status_text, table
from drkit.domain.errors import UsageError

if TYPE_CHECKING:
    from drkit.engines.core.types import VerifyReport
    from drkit.engines.core.workspace import Workspace
    from drkit.engines.stack.verify_choice import VerifyPlan


def verify_cmd(
    ctx: typer.Context,
    backup_id: str = typer.Argument(
        None,
        help="A backup id of any service, a unique start of one, or `latest` "
        "(default: every service's newest).",
    ),
    latest: bool = typer.Option(False, "--latest", help="The newest backup of every service (the default)."),
    deep: bool = typer.Option(
        False,
        "--deep",
        help="Also restore it somewhere disposable and compare: PostgreSQL into a throwaway "
        "instance (row counts, amcheck), Redis into a throwaway server, objects into a scratch bucket.",
    ),
    service: str = typer.Option(None, "--service", help="Only this service's backups."),
    repo: str = typer.Option(
        None, "--repo", help="Check this repository (a copy), alone: every backup and set in it."
    ),
) -> None:
    """Re-read everything a restore of the backup reads (every file against the manifest, the
    WAL segments it needs, object packs) and check it; exit 3 on problems. Only a backup that
    passes, every part read, is recorded as verified (what retention keeps). Without an id:
    the newest backup of every service (--deep: PostgreSQL's newest base backup).

    Examples: drkit verify;  drkit verify --deep;  drkit verify 20261125T02 --service redis;
    drkit verify --service s3 --deep;  drkit verify --repo offsite
    """
    from drkit.cli.restore_cmds import drkit_argv
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.stack.verify import SharedReads, verify_backup
    from drkit.engines.stack.verify_choice import backups_to_verify

    opts = options(ctx)
    if backup_id and latest:
        raise UsageError("give a backup id or --latest, not both")
    ws = open_workspace(opts.stack(), repository=repo)
    if repo and not (backup_id or latest or deep):
        from drkit.cli.sync_cmds import verify_copy

        verify_copy(opts, ws)
        return
    plan = backups_to_verify(ws, backup_id, service=service, deep=deep)
    if opts.dry_run:
        _show_plan(opts, plan)
        return
    argv, shared = drkit_argv(), SharedReads()  # WAL and object versions read once per run
    reports = [
        verify_backup(
            ws, c.service, c.manifest, deep=c.deep, drkit_argv=argv, shared=shared, progress=opts.progress
        )
        for c in plan.chosen
    ]
    _record(ws, reports)
    if opts.json:
        bodies = [_report_json(r) for r in reports]
        emit_json(
            bodies[0]
            if plan.single
            else {
                "ok": all(r.ok for r in reports),
                "backups": bodies,
                "without_backup": list(plan.without_backup),
                "passed_over": [{"backup_id": u.backup_id, "reason": u.reason} for u in plan.passed_over],
            }
        )
    else:
        for report in reports:
            _print_report(report)
        for name in plan.without_backup:
            console.print(f"[yellow]{name}: no backup to verify[/yellow]")
        for u in plan.passed_over:
            console.print(f"passed over {u.describe()}; name it to verify it", markup=False)
        if not plan.single:
            bad = [r.backup_id for r in reports if not r.ok]
            summary = (
                f"[red]{len(bad)} of {len(reports)} FAILED[/red]: {', '.join(bad)}"
                if bad
                else f"[green]all {len(reports)} ok[/green]"
            )
            console.print(f"verified {len(reports)} backups: {summary}")
    if not all(r.ok for r in reports):
        raise typer.Exit(3)


def _show_plan(opts: Options, plan: VerifyPlan) -> None:
    rows = [
        {
            "backup_id": c.manifest.backup_id,
            "service": c.service.name,
            "kind": c.manifest.kind.value,
            "deep": c.deep,
        }
        for c in plan.chosen
    ]
    if opts.json:
        emit_json({"dry_run": True, "would_verify": rows, "without_backup": list(plan.without_backup)})
        return
    for r in rows:
        console.print(f"would verify {r['backup_id']} of {r['service']}{' (deep)' if r['deep'] else ''}")


def _record(ws: Workspace, reports: list[VerifyReport]) -> None:
    from drkit.engines.ops.status import record_verify

    for report in reports:
        if unrecorded := record_verify(ws, report):  # for `drkit status` and `drkit metrics`
            err_console.print(f"[yellow]{unrecorded}[/yellow]")


def _report_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "backup_id": report.backup_id,
        "service": report.service,
        "deep": report.deep,
        "ok": report.ok,
        "verified": report.verified,  # recorded in verified.json: what retention keeps
        "seconds": report.seconds,
        "results": report.results,
    }


def _print_report(report: VerifyReport) -> None:
    from drkit.domain.durations import format_duration

    table(
        f"verify {report.backup_id} of {report.service}{' (deep)' if report.deep else ''}",
        ["check", "status", "detail"],
        [(r.name, status_text(r.status.value), r.detail) for r in report.results],
    )
    verdict = "[green]ok[/green]" if report.ok else "[red]FAILED[/red]"
    if report.ok and not report.complete:
        verdict = "[yellow]ok so far, not recorded as verified: part of it could not be read here[/yellow]"
    console.print(f"{verdict} in {format_duration(report.seconds)}")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_cmd)
