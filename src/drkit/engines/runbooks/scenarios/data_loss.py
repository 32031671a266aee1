"""data-loss --target-time T: rows were deleted or changed by mistake at some moment after T.

Side by side (the default): pause the writers, restore a copy of PostgreSQL as of T into a
scratch directory beside production, copy back the chosen rows (`--copy-back "TABLE where
CONDITION"`) into the live database in one transaction (counts shown before it commits),
check, resume the writers. Nothing written since T is lost.

In place (`--in-place`): stop the writers, move the data directory aside (kept), restore to T
in place, check, start the writers. Everything written after T is gone from the live
database (it stays in the moved-aside directory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drkit.domain.errors import UsageError
from drkit.domain.recovery import RecoveryTarget, TargetKind, parse_target_time
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.prepare import prepare_restore
from drkit.engines.runbooks import pg_steps, steps
from drkit.engines.runbooks.copy_back import copy_back_step, parse_copy_back
from drkit.engines.runbooks.model import Runbook, Step
from drkit.infra.ports import free_port

SCENARIO = "data-loss"


def plan(
    ws: Workspace,
    *,
    drkit_argv: list[str],
    target_time: str | None,
    in_place: bool = False,
    copy_back: tuple[str, ...] = (),
    service: str | None = None,
    switch_wal: bool = False,
    say: Callable[[str], None] | None = None,
    **_: Any,
) -> dict[str, Any]:
    if not target_time:
        raise UsageError("data-loss needs --target-time T: the moment just before the loss")
    when = parse_target_time(target_time)
    pg = ws.postgres(service)
    if in_place and copy_back:
        raise UsageError("--copy-back goes with the side-by-side recovery, not --in-place")
    if not in_place and not copy_back:
        raise UsageError(
            'side by side, say what to copy back: --copy-back "TABLE where CONDITION" (or --in-place)'
        )
    for spec in copy_back:
        parse_copy_back(spec)  # refuse a malformed one before anything runs
    target = RecoveryTarget(TargetKind.TIME, time=when)
    stamp = ws.clock.now().strftime("%Y%m%dT%H%M%SZ")
    if in_place:
        if pg.runtime.type != "local" or not pg.runtime.data_dir:
            raise UsageError(f"--in-place needs a local runtime with data_dir for {pg.name}")
        prepared = prepare_restore(ws, pg, target, in_place=True, switch_wal=switch_wal, say=say)
    else:
        scratch = ws.state_dir / "recover" / stamp / "pitr"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        prepared = prepare_restore(ws, pg, target, to=scratch, switch_wal=switch_wal, say=say)
    return {
        "service": pg.name,
        "target_time": when.isoformat(),
        "in_place": in_place,
        "copy_back": list(copy_back),
        "writers": steps.dependents_of(ws.stack, pg.name),
        "data_dir": pg.runtime.data_dir,
        "aside": pg_steps.aside_name(pg.runtime.data_dir or "", "before-pitr", ws.clock.now()),
        "scratch": str(ws.state_dir / "recover" / stamp / "pitr"),
        "port": free_port(),
        "backup_id": prepared.plan.backup.backup_id,
        "backup_finished_at": prepared.plan.backup.finished_at.isoformat(),
        "drkit_argv": drkit_argv,
    }


def build(parameters: dict[str, Any]) -> Runbook:
    writers = list(parameters["writers"])
    target = pg_steps.target_of(parameters)
    chosen: list[Step]
    if parameters["in_place"]:
        chosen = [
            steps.stop_step("stop-writers", writers, "nothing may write while the database goes back to T"),
            *pg_steps.on(
                parameters["service"],
                pg_steps.stop_postgres_step(),
                pg_steps.move_aside_step(parameters["data_dir"], parameters["aside"]),
                pg_steps.restore_in_place_step(parameters["backup_id"], target),
            ),
            steps.integrity_step(),
            steps.start_step("start-writers", writers, "in dependency order"),
        ]
    else:
        scratch, port = parameters["scratch"], int(parameters["port"])
        chosen = [
            steps.pause_step("pause-writers", writers),
            *pg_steps.on(
                parameters["service"],
                pg_steps.restore_scratch_step(parameters["backup_id"], target, scratch, port),
            ),
            *(copy_back_step(i, spec, port) for i, spec in enumerate(parameters["copy_back"], 1)),
            pg_steps.stop_scratch_step(scratch, port),
            steps.integrity_step(),
            steps.resume_step("resume-writers", writers),
        ]
    where = "in place" if parameters["in_place"] else f"side by side in {parameters['scratch']}"
    return Runbook(
        SCENARIO,
        (*chosen, steps.smoke_step()),
        parameters,
        targets={
            "postgres": parameters["service"],
            "backup": parameters["backup_id"],
            "target": target.describe(),
            "how": where,
            "copy_back": parameters["copy_back"],
            "writers": writers,
            **({"moved_aside_to": parameters["aside"]} if parameters["in_place"] else {}),
        },
    )
