"""The recovery of a restored data directory: its settings, the WAL prefetched for it, the
start, the wait for promotion, and the check that it reached what the plan said it would
(a segment that vanished from the archive mid-restore, or was answered "absent", ends
recovery early without an error from PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from drkit.adapters.postgres.client import connect
from drkit.adapters.postgres.recovery_conf import (
    archive_command,
    restore_command,
    target_timeline_setting,
    write_recovery_settings,
)
from drkit.domain.errors import OperationError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.recovery import TargetKind
from drkit.domain.stack import Service, WalMode
from drkit.domain.wal import Lsn, Segment, segment_on_path
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.recovery_watch import (
    RecoveryState,
    RecoveryStopped,
    failure_reason,
    follow_recovery,
    startup_activity,
)
from drkit.engines.postgres.replay_meter import replay_meter
from drkit.engines.postgres.wal.archive import WalArchive, archive_for
from drkit.engines.postgres.wal.prefetch import prefetch_restore_command, prefetching
from drkit.engines.postgres.wal_ready import needed_first, wait_prefetched
from drkit.infra.clock import Clock
from drkit.infra.hold import hold
from drkit.infra.ownership import chown_tree
from drkit.runtimes.local_postgres import LocalPostgres


def recovery_settings(
    ws: Workspace,
    service: Service,
    chosen: RestorePlan,
    data_dir: Path,
    drkit_argv: list[str],
    *,
    own_archive: bool,
) -> dict[str, str]:
    settings = {
        "restore_command": prefetch_restore_command(
            data_dir, restore_command(drkit_argv, ws.stack.source_path, service.name)
        ),
        **chosen.target.settings(),
        **target_timeline_setting(chosen.timeline),
    }
    if chosen.target.kind is not TargetKind.LATEST:
        settings["recovery_target_action"] = "promote"
    pg = chosen.backup.postgres
    if pg is not None and pg.server_version >= 140000:
        # One syncfs() instead of an fsync per file when the restored server starts.
        settings["recovery_init_sync_method"] = "syncfs"
    if own_archive and service.postgres and service.postgres.wal_mode is WalMode.ARCHIVE:
        settings["archive_command"] = archive_command(drkit_argv, ws.stack.source_path, service.name)
    return settings


def configure(data_dir: Path, settings: dict[str, str], chosen: RestorePlan, os_user: str | None) -> None:
    write_recovery_settings(
        data_dir,
        settings,
        comment=f"drkit restore of {chosen.backup.backup_id} to {chosen.target.describe()}",
    )
    chown_tree(data_dir, os_user)


def recover(
    ws: Workspace,
    service: Service,
    chosen: RestorePlan,
    runtime: LocalPostgres,
    dsn: str,
    *,
    timeout: float,
    stall: float,
    report: Progress = SILENT,
) -> dict[str, Any]:
    """Start `runtime` on its restored directory, follow recovery to promotion, and check
    the point reached against the plan. The prefetched WAL is gone when this returns."""
    report.step(f"start PostgreSQL on {runtime.data_dir} and replay WAL to {chosen.target.describe()}")
    with _prefetch(ws, service, chosen, runtime.data_dir):
        wait_prefetched(runtime.data_dir, needed_first(chosen), ws.clock)  # before the server asks
        hold("start")
        _start(runtime)
        hold("recovery")
        reached = _wait_for_promotion(runtime, dsn, timeout, stall, ws.clock, replay_meter(report, chosen))
        hold("promoted")
    check_reached(chosen, reached.get("lsn"), archive_for(ws, service))
    return reached


def _prefetch(ws: Workspace, service: Service, chosen: RestorePlan, data_dir: Path) -> Any:
    pg = chosen.backup.require_postgres()
    first = Segment.parse(chosen.first_segment, pg.wal_segment_size)
    last = Segment.parse(chosen.last_segment, pg.wal_segment_size) if chosen.last_segment else None
    os_user = service.runtime.os_user
    return prefetching(archive_for(ws, service), data_dir, first, last, os_user=os_user, path=chosen.path)


def _start(runtime: LocalPostgres) -> None:
    try:
        runtime.start()
    except OperationError:
        if not runtime.is_running():
            raise OperationError(f"recovery stopped: {failure_reason(runtime.log_file)}") from None
        # pg_ctl stopped waiting (after two minutes); recovery goes on: follow it instead.


def _wait_for_promotion(
    runtime: LocalPostgres,
    dsn: str,
    timeout: float,
    stall: float,
    clock: Clock,
    seen: Callable[[str | None], None] = lambda _p: None,
) -> dict[str, Any]:
    def probe() -> RecoveryState:
        state = _recovery_state()
        seen(state.position)
        return state

    def _recovery_state() -> RecoveryState:
        if not runtime.is_running():
            raise RecoveryStopped(failure_reason(runtime.log_file))
        try:
            with connect(dsn) as conn:
                row = conn.execute(
                    "select pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                    "pg_last_xact_replay_timestamp(), "
                    "case when pg_is_in_recovery() then null else "
                    "('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int end"
                ).fetchone()
        except (OperationError, psycopg.Error):  # not taking connections yet
            return RecoveryState(position=startup_activity(runtime.pid()))
        if row is None or row[0]:
            return RecoveryState(position=f"LSN {row[1]}" if row and row[1] else None)
        return RecoveryState(promoted={"lsn": row[1], "time": row[2], "timeline": row[3]})

    try:
        # Polled at least every 0.2 s: the promotion is noticed at once (a connection is cheap).
        return follow_recovery(probe, limit=timeout, stall=stall, clock=clock, max_interval=0.2)
    except RecoveryStopped as exc:
        raise OperationError(f"recovery stopped: {exc}") from exc


def check_reached(chosen: RestorePlan, reached: str | None, archive: WalArchive) -> None:
    """Fail, naming the gap, when recovery ended short of the plan: for latest, before the
    plan's last segment (or partial) was replayed; for an LSN, before it; for the backup's
    consistent point, before the backup's end. (Time and name targets PostgreSQL checks
    itself: it stops with "recovery ended before configured recovery target was reached".)"""
    pg = chosen.backup.require_postgres()
    size = pg.wal_segment_size
    need: Lsn | None = None
    what = ""
    if chosen.target.kind is TargetKind.LATEST and chosen.last_segment:
        last = Segment.parse(chosen.last_segment, size)
        need = Lsn(last.start.value + 1)  # into it, at least: it was replayed
        what = f"the plan replays WAL up to {last.name}{' (partial)' if chosen.uses_partial else ''}"
    elif chosen.target.kind is TargetKind.LSN and chosen.target.lsn is not None:
        need, what = chosen.target.lsn, f"the target is LSN {chosen.target.lsn}"
    elif chosen.target.kind is TargetKind.IMMEDIATE:
        need, what = Lsn.parse(pg.stop_lsn), f"the backup ends at {pg.stop_lsn}"
    if need is None:
        return
    try:
        got = Lsn.parse(reached or "")
    except ValueError:
        raise OperationError(f"the restored server reports no replayed position; {what}") from None
    if got >= need:
        return
    gap = Segment.containing(Lsn(max(got.value - 1, 0)), chosen.timeline, size).next()
    missing = segment_on_path(chosen.path, gap.number, size) if chosen.path else gap
    try:
        held = archive.locate(missing.name) is not None
    except (OSError, OperationError):
        held = False
    now = (
        "is in the archive now, but recovery was told it was absent"
        if held
        else ("is not in the archive any more")
    )
    raise OperationError(
        f"recovery ended at LSN {got}, short of its plan: {what}; WAL from {missing.name} on was "
        f"not replayed ({missing.name} {now}); nothing was started for clients",
        hint="find the missing WAL (or choose a target before the gap) and restore again",
    )
