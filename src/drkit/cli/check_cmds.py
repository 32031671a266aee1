"""`drkit check`: configuration, connectivity and archiving settings; exit 3 on problems."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from drkit.cli.context import options
from drkit.cli.render import console, emit_json, status_text, table

if TYPE_CHECKING:
    from drkit.domain.checks import CheckResult
    from drkit.engines.core.workspace import Workspace
    from drkit.engines.stack.asides import KeptData


def check_cmd(ctx: typer.Context) -> None:
    """Check that backups and PITR can work: config, repository, WAL settings, archiver
    failures and lag, replication slot and receiver, client tool versions, nothing foreign
    in PGDATA; Redis persistence, its last BGSAVE and AOF writes, and redis-check-rdb/aof;
    the old data in-place restores kept (size, and the command that removes it; in JSON
    under "moved_aside").

    Example: drkit --config stack.yaml check --output json
    """
    from drkit.domain.checks import any_critical_failure
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.objectives import check_objectives
    from drkit.engines.stack.check import run_checks

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    kept: list[KeptData] = []
    results = run_checks(ws, kept=kept) + _replication_checks(ws) + check_objectives(ws)
    failed = any_critical_failure(results)
    if opts.json:
        emit_json({"ok": not failed, "results": results, "moved_aside": [k.to_dict() for k in kept]})
    else:
        table(
            None,
            ["check", "status", "detail"],
            [(r.name, status_text(r.status.value), r.detail) for r in results],
        )
        console.print("[red]problems found[/red]" if failed else "[green]all checks passed[/green]")
    if failed:
        raise typer.Exit(3)


def _replication_checks(ws: Workspace) -> list[CheckResult]:
    """Each replicated service: Patroni's view (leader, members, lag, timeline) of a service
    it runs; else one primary, and each member's pg_rewind prerequisites and walsender timeout."""
    from drkit.engines.failover.checks import replication_checks
    from drkit.engines.failover.cluster import Cluster
    from drkit.engines.failover.patroni import checks

    out: list[CheckResult] = []
    for svc in ws.stack.services_of_kind("postgres"):
        if svc.replication is None:
            continue
        cluster = Cluster(svc, svc.replication, ws.state_dir)
        out += checks(cluster) if svc.replication.patroni is not None else replication_checks(cluster)
    return out


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)
