"""db-corruption: PostgreSQL's data is damaged. Stop its writers; assess with a schema-only
look and take an emergency dump where the server still answers (pinned in the repository as
evidence; `--no-emergency-dump` skips it); archive its current WAL
and stop it; move the data directory aside (kept); restore the newest base backup with WAL
to the latest point; check the data; start the dependents in order; smoke checks.

(The source restored a pg_dump and then "replayed WAL" onto it, which cannot work; and it
wrote recovery.conf, which PostgreSQL 12+ refuses.)"""

from __future__ import annotations

from typing import Any

from drkit.domain.errors import UsageError
from drkit.domain.recovery import RecoveryTarget
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.prepare import prepare_restore
from drkit.engines.runbooks import pg_steps, steps
from drkit.engines.runbooks.model import Runbook

SCENARIO = "db-corruption"


def plan(
    ws: Workspace,
    *,
    drkit_argv: list[str],
    service: str | None = None,
    emergency_dump: bool = True,
    **_: Any,
) -> dict[str, Any]:
    """Everything decided before anything runs; stored in the journal, so --resume rebuilds
    the same runbook."""
    pg = ws.postgres(service)
    if pg.runtime.type != "local" or not pg.runtime.data_dir:
        raise UsageError(
            f"{SCENARIO} restores {pg.name} in place, which drkit does for a local runtime with "
            f"data_dir (this one is {pg.runtime.type})"
        )
    prepared = prepare_restore(ws, pg, RecoveryTarget(), in_place=True)
    return {
        "service": pg.name,
        "writers": steps.dependents_of(ws.stack, pg.name),
        "data_dir": pg.runtime.data_dir,
        "aside": pg_steps.aside_name(pg.runtime.data_dir, "corrupt", ws.clock.now()),
        "backup_id": prepared.plan.backup.backup_id,
        "backup_finished_at": prepared.plan.backup.finished_at.isoformat(),
        "wal": f"{prepared.plan.first_segment}..{prepared.plan.last_segment or 'the newest archived'}",
        "drkit_argv": drkit_argv,
        "emergency_dump": emergency_dump,
    }


def build(parameters: dict[str, Any]) -> Runbook:
    writers = list(parameters["writers"])
    return Runbook(
        SCENARIO,
        (
            steps.stop_step("stop-writers", writers, "nothing may write while the database is replaced"),
            *pg_steps.on(
                parameters["service"],
                # --no-emergency-dump: skipped when time matters more than that evidence
                *([pg_steps.emergency_dump_step()] if parameters.get("emergency_dump", True) else []),
                pg_steps.stop_postgres_step(),
                pg_steps.move_aside_step(parameters["data_dir"], parameters["aside"]),
                pg_steps.restore_in_place_step(parameters["backup_id"], RecoveryTarget()),
            ),
            steps.integrity_step(),
            steps.start_step("start-dependents", writers, "in dependency order"),
            steps.smoke_step(),
        ),
        parameters,
        targets={
            "postgres": parameters["service"],
            "backup": parameters["backup_id"],
            "wal": parameters["wal"],
            "target": "latest",
            "data_dir": parameters["data_dir"],
            "moved_aside_to": parameters["aside"],
            "writers": writers,
            "emergency_dump": "yes"
            if parameters.get("emergency_dump", True)
            else "skipped (--no-emergency-dump)",
        },
    )
