"""In-place restore of a PostgreSQL run as a local process.

1. A restore an earlier run left half done (killed) is undone first, from its ledger: the
   data from before it goes back to the live path (or, if it had already been started for
   clients, it is kept and the ledger settled).
2. A running server restored to latest closes and archives its current WAL segment; the
   server stops; then whatever its pg_wal holds that the archive lacks is saved into the
   archive (salvage.py), whether it ran, stopped cleanly or crashed. A latest restore is
   planned again from there (the same backup, the WAL now archived).
3. The data directory is moved aside (infra/aside.py: a name never reused, a ledger), the
   backup extracted into its place, recovery runs with the server kept away from clients
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

import psycopg

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.recovery import TargetKind
from drkit.domain.stack import Service
from drkit.domain.wal import Segment
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.extract import extract_backup
from drkit.engines.postgres.isolation import local_options, restore_in_progress
from drkit.engines.postgres.outcome import RestoreOutcome, RestoreRequest, restore_failed
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.preflight import Checked
from drkit.engines.postgres.replay import configure, recover, recovery_settings
from drkit.engines.postgres.salvage import salvage_wal
from drkit.engines.postgres.switch_wal import DEFAULT_WAIT as SWITCH_WAIT
from drkit.engines.postgres.switch_wal import switch_wal_and_wait
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR
from drkit.infra.aside import Aside, in_use, last_replacement, move_aside, roll_back, settle, undo_unfinished
from drkit.infra.hold import hold
from drkit.infra.interrupt import deferred
from drkit.infra.ports import free_port
from drkit.runtimes.local_postgres import LocalPostgres

STARTING_UP = ("the database system is starting up", "not yet accepting connections")
Replan = Callable[[], tuple[RestorePlan, Checked]]


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
    aside, chosen, checked = _stop_and_move(ws, service, live, chosen, checked, was_running, replan, notes)
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
        aside = in_use(aside, _facts(reached))
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


def _stop_and_move(
    ws: Workspace,
    service: Service,
    live: LocalPostgres,
    chosen: RestorePlan,
    checked: Checked,
    was_running: bool,
    replan: Replan,
    notes: list[str],
) -> tuple[Aside, RestorePlan, Checked]:
    """Stop the server (its current WAL archived first, for latest), save what its pg_wal
    holds, plan again, move the data directory aside. A failure starts it again."""
    data_dir = live.data_dir
    latest = chosen.target.kind is TargetKind.LATEST
    if latest and was_running and live.is_running():
        notes.append(archive_current_segment(ws, service))
    live.stop()
    try:
        first = Segment.parse(chosen.first_segment, chosen.backup.require_postgres().wal_segment_size)
        salvaged = salvage_wal(
            ws,
            service,
            data_dir,
            since=first,
            cluster=chosen.backup.require_postgres().system_identifier,
            config_hint=ws.stack.source_path,
        )
        notes.append(f"old pg_wal: {salvaged.describe()}")
        if latest:
            chosen, checked = replan()
        hold("move-aside")
        aside = move_aside(
            data_dir,
            "before-restore",
            now=ws.clock.now(),
            ledger=ledger_path(ws, service),
            facts={"was_running": "yes" if was_running else "no"},
        )
    except BaseException as exc:
        with deferred():
            left, ok = _start_again(live, was_running)
        raise restore_failed(exc, f"nothing was moved; {left}", rolled_back=ok) from exc
    return aside, chosen, checked


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


def _facts(reached: dict[str, object]) -> dict[str, str]:
    when = reached.get("time")
    return {
        "reached_lsn": str(reached.get("lsn") or ""),
        "reached_time": when.isoformat() if isinstance(when, datetime) else "",
        "timeline": str(reached.get("timeline") or ""),
    }


def archive_current_segment(ws: Workspace, service: Service, *, wait: float = SWITCH_WAIT) -> str:
    """Before a running server is stopped for a restore to latest: close its current WAL
    segment and wait until the repository holds it (switch_wal.py, the one mechanism), so
    the archive holds whole segments. When that fails (archiving broken), the restore goes
    on: what pg_wal holds is saved after the stop (salvage.py), or the restore refuses.
    Says what happened."""
    try:
        with connect(service_dsn(service, connect_timeout=10)) as conn:
            state = conn.execute("select pg_is_in_recovery(), current_setting('archive_mode')").fetchone()
        if state is None or state[0] or state[1] == "off":
            return "no current WAL segment to archive (in recovery, or not archiving)"
        switched = switch_wal_and_wait(ws, service, timeout=wait)
    except (OperationError, psycopg.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if any(s in first for s in STARTING_UP):
            return "the server is still recovering: it wrote no WAL of its own"
        return (
            f"the server could not archive its current WAL segment ({first}); "
            "its pg_wal is read after it stops"
        )
    return f"current WAL segment {switched.segment} archived"
