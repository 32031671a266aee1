"""In-place restore of a PostgreSQL run as a local process.

1. A restore an earlier run left half done (killed) is undone first, from its ledger: the
   data from before it goes back to the live path (or, if it had already been started for
   clients, it is kept and the ledger settled).
2. The server is handed over (handover.py, shared with the compose runtime): for latest its
   current WAL segment archived, stopped, what its pg_wal holds that the archive lacks
   saved (salvage.py), planned again, the data directory moved aside (infra/aside.py).
3. The backup is extracted into its place, recovery runs with the server kept away from clients
   (isolation.py), and the point reached is compared with the plan.
4. Accepted: the server is stopped and started again for clients with its own settings.
Any failure or signal after step 2 stops the restored server, puts the old data back at
the live path and starts the server again if it was running, then says so in one line.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from drkit.adapters.postgres.client import service_dsn
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.extract import extract_backup
from drkit.engines.postgres.handover import Live, Replan, reached_facts, stop_and_move
from drkit.engines.postgres.isolation import local_options, restore_in_progress
from drkit.engines.postgres.outcome import RestoreOutcome, RestoreRequest, restore_failed
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.preflight import Checked
from drkit.engines.postgres.replay import configure, recover, recovery_settings
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR
from drkit.infra.aside import Aside, in_use, last_replacement, move_aside, roll_back, settle, undo_unfinished
from drkit.infra.hold import hold
from drkit.infra.interrupt import deferred
from drkit.infra.ports import free_port
from drkit.runtimes.local_postgres import LocalPostgres


@dataclass(frozen=True)
class Undone:
    """What became of a restore an earlier run left half done."""

    note: str
    was_running: bool


def ledger_path(ws: Workspace, service: Service) -> Path:
    """Where an in-place restore of `service` records what it moved (outside the data)."""
    return ws.state_dir / "replacing" / f"{service.name}.json"


def restore_local_in_place(
    ws: Workspace,
    service: Service,
    request: RestoreRequest,
    chosen: RestorePlan,
    checked: Checked,
    *,
    drkit_argv: list[str],
    progress: Callable[[int], None] | None,
    started: datetime,
    replan: Replan,
    report: Progress = SILENT,
) -> RestoreOutcome:
    spec = service.runtime
    if spec.type != "local" or not spec.data_dir:
        raise UsageError(
            f"in-place restore of {service.name} needs a local runtime with data_dir "
            f"(this one is {spec.type}); restore --to DIR and switch the volume by hand"
        )
    live = LocalPostgres(spec)
    data_dir = Path(spec.data_dir)
    notes: list[str] = []
    undone = finish_interrupted(ws, service, stop=live.stop, live=data_dir)
    if undone is not None:
        notes.append(undone.note)
    was_running = bool(undone and undone.was_running) or (
        live.is_running() and not restore_in_progress(data_dir)
    )
    handed = Live(
        data_dir=data_dir,
        running=was_running,
        archive_first=live.is_running(),
        stop=live.stop,
        start_again=lambda: _start_again(live, was_running),
        move_aside=lambda: move_aside(
            data_dir,
            "before-restore",
            now=ws.clock.now(),
            ledger=ledger_path(ws, service),
            facts={"was_running": "yes" if was_running else "no"},
        ),
    )
    aside, chosen, checked = stop_and_move(ws, service, handed, chosen, checked, replan, notes)
    isolated = LocalPostgres(replace(spec, port=free_port()), options=local_options())
    try:
        extract_backup(ws, service, chosen.links, checked, data_dir, progress)
        settings = recovery_settings(
            ws, service, chosen, data_dir, drkit_argv, own_archive=request.own_archive
        )
        configure(data_dir, settings, chosen, spec.os_user)
        dsn = service_dsn(service, port=isolated.port)  # as its DSN says, on the free port
        reached = recover(
            ws, service, chosen, isolated, dsn, timeout=request.timeout, stall=request.stall, report=report
        )
        isolated.stop()
        aside = in_use(aside, reached_facts(reached))
        hold("clients")
        live.start()  # with its own settings, for clients
    except BaseException as exc:
        with deferred():
            left, ok = put_back(ws, live, aside, was_running)
        raise restore_failed(exc, left, rolled_back=ok) from exc
    finished = ws.clock.now()
    settle(aside, {"postgres_healthy_at": finished.isoformat()})
    return RestoreOutcome(
        backup_id=chosen.backup.backup_id,
        target=chosen.target.describe(),
        data_dir=str(data_dir),
        moved_aside=str(aside.path) if aside.path else None,
        reached_lsn=reached.get("lsn"),
        reached_time=reached.get("time"),
        timeline=reached.get("timeline"),
        started_at=started,
        finished_at=finished,
        running=True,
        port=spec.port,
        notes=tuple(notes),
    )


def _start_again(live: LocalPostgres, was_running: bool) -> tuple[str, bool]:
    if not was_running:
        return f"{live.data_dir} is as it was (PostgreSQL was not running and stays stopped)", True
    try:
        live.start()
    except OperationError as exc:
        return f"PostgreSQL did not start again: {exc.message}", False
    return f"PostgreSQL runs again on {live.data_dir}", True


def put_back(ws: Workspace, live: LocalPostgres, aside: Aside, was_running: bool) -> tuple[str, bool]:
    """After a failure: stop whatever server runs on the restored directory, put the old
    data back at the live path, start it again if it was running. (what is left where, ok)"""
    said = []
    pid = live.pid()
    if pid is not None:
        try:
            live.stop()
        except OperationError as exc:
            return (
                f"the restored server (pid {pid}) did not stop ({exc.message}); the old data is "
                f"in {aside.describe()}, the restored data at {aside.live}",
                False,
            )
        said.append(f"stopped the restored server (pid {pid})")
    try:
        leftover = roll_back(aside, now=ws.clock.now())
    except OperationError as exc:
        return "; ".join([*said, exc.message]), False
    said.append(f"the data from before the restore is back at {aside.live}")
    if leftover is not None:
        said.append(f"the half-restored data is left in {leftover} (remove it: rm -rf -- {leftover})")
    text, ok = _start_again(live, was_running)
    return "; ".join([*said, text]), ok


def finish_interrupted(
    ws: Workspace, service: Service, *, stop: Callable[[], None], live: Path
) -> Undone | None:
    """An in-place restore of `service` that an earlier run left half done: undo it (its
    server stopped through `stop`, the old data back at the live path), or, when it had
    already been started for clients, keep it and settle the ledger."""
    found = undo_unfinished(ledger_path(ws, service), now=ws.clock.now(), stop=stop, live=live)
    if found is None:
        return None
    aside, what = found
    if what == "kept":
        tidy(aside.live)
        return Undone(f"the restore interrupted before it reported had finished; {aside.live} is kept", False)
    return Undone(
        f"an interrupted restore was undone first: the data from before it is back at {aside.live}",
        aside.fact("was_running") == "yes",
    )


def resumed_facts(ws: Workspace, service: Service) -> dict[str, object] | None:
    """For a recovery resumed after a kill: what the last in-place restore of `service`
    reported (its ledger), once it is settled and nothing of it is left in the data."""
    found = last_replacement(ledger_path(ws, service))
    if found is None:
        return None
    aside, state = found
    if state == "started":
        settle(aside)
    if state in ("started", "settled"):
        tidy(aside.live)
        facts: dict[str, object] = {k: v for k, v in aside.facts if k != "was_running" and v}
        if str(facts.get("timeline", "")).isdigit():
            facts["timeline"] = int(str(facts["timeline"]))
        return facts
    return None


def tidy(data_dir: Path) -> None:
    """Nothing of drkit's stays in a data directory: the WAL prefetch spool of a restore
    that was killed (it holds root-owned files a base backup cannot read)."""
    if not restore_in_progress(data_dir):
        shutil.rmtree(data_dir / PREFETCH_DIR, ignore_errors=True)
