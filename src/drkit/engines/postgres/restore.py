"""Restore PostgreSQL from a base backup plus WAL to a target, into a new directory (the
default) or in place (the old data directory is moved aside, never deleted)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.adapters.postgres.recovery_conf import (
    archive_command,
    restore_command,
    target_timeline_setting,
    write_recovery_settings,
)
from drkit.adapters.postgres.tools import require_server_major
from drkit.domain.backup import Manifest
from drkit.domain.errors import IntegrityError, OperationError, UsageError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.stack import RuntimeSpec, Service, WalMode
from drkit.domain.wal import Segment
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import lock_name
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.chain_restore import extract_chain, restore_workers
from drkit.engines.postgres.plan import ArchiveView, RestorePlan, plan_restore
from drkit.engines.postgres.recovery_watch import (
    RecoveryState,
    RecoveryStopped,
    failure_reason,
    follow_recovery,
    startup_activity,
)
from drkit.engines.postgres.wal.archive import archive_for, timeline_paths
from drkit.engines.postgres.wal.prefetch import prefetch_restore_command, prefetching
from drkit.engines.postgres.wal.stream import flush_spool
from drkit.engines.postgres.wal.times import CommitTimes
from drkit.engines.postgres.wal_ready import needed_first, wait_prefetched
from drkit.infra import locks
from drkit.infra.clock import Clock
from drkit.infra.hold import hold
from drkit.infra.ownership import chown_tree, traversable_by
from drkit.infra.ports import free_port
from drkit.infra.wait import wait_for
from drkit.runtimes.local_postgres import LocalPostgres


@dataclass(frozen=True)
class RestoreRequest:
    target: RecoveryTarget = field(default_factory=RecoveryTarget)
    backup_id: str | None = None
    to: Path | None = None
    in_place: bool = False
    keep_running: bool = False
    quarantine: bool = True  # a copy restored beside production must not archive into it
    # In place on another stack's server (a drill's copy restored from production's backups):
    # archive into this stack's repository, whatever archive_command the backup carries.
    own_archive: bool = False
    port: int | None = None
    timeout: float = 3600.0  # the whole recovery, however long it makes progress
    stall: float = 600.0  # recovery that moves no further for this long has failed
    timeline: int | None = None  # None: the newest timeline that descends from the backup


@dataclass(frozen=True)
class RestoreOutcome:
    backup_id: str
    target: str
    data_dir: str
    moved_aside: str | None
    reached_lsn: str | None
    reached_time: datetime | None
    timeline: int | None
    started_at: datetime
    finished_at: datetime
    running: bool
    port: int | None

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def plan(ws: Workspace, service: Service, request: RestoreRequest) -> RestorePlan:
    """Everything checked, nothing touched."""
    policy = service.postgres
    if policy and policy.wal_mode is WalMode.STREAM and request.target.kind is TargetKind.LATEST:
        flush_spool(ws, service)  # the newest WAL may still sit in the local receiver's spool
    listing = list_backups(ws.repo, ws.stack.name, service.name)
    for damaged in listing.damaged:
        if damaged.backup_id == request.backup_id:  # say why it cannot be used, not "no backup"
            raise IntegrityError(f"backup {damaged.backup_id} cannot be used: {damaged.reason}")
    backups = list(listing.complete)
    archive = archive_for(ws, service)
    names = archive.names()
    with CommitTimes(archive, service.runtime.bin_dir, ws.state_dir / "wal-times") as times:
        view = ArchiveView(frozenset(names), timeline_paths(archive, names), times)
        return plan_restore(
            backups,
            view,
            request.target,
            ws.clock.now(),
            request.backup_id,
            request.timeline,
            damaged={d.backup_id: d.reason for d in listing.damaged},
        )


def restore(
    ws: Workspace,
    service: Service,
    request: RestoreRequest,
    *,
    drkit_argv: list[str],
    progress: Callable[[int], None] | None = None,
    planned: RestorePlan | None = None,
) -> RestoreOutcome:
    """`planned`: the plan `prepare_restore` made for this request and the operator saw (it is
    not made twice: planning reads every manifest and, for a time target, WAL)."""
    if request.in_place == (request.to is not None):
        raise UsageError("restore needs exactly one of --to DIR or --in-place")
    with locks.exclusive(ws.lock_dir, lock_name(service.name), "restore"):
        chosen = planned or plan(ws, service, request)
        require_server_major(service.runtime.bin_dir, chosen.backup.require_postgres().server_version)
        started = ws.clock.now()
        if request.in_place and service.runtime.type == "compose":
            return _restore_container(ws, service, request, chosen, started, progress)
        runtime, data_dir, aside = _prepare_target(ws, service, request)
        try:
            _extract(ws, service, chosen.links, data_dir, progress)
            _configure(ws, service, chosen, data_dir, request, drkit_argv, runtime)
        except BaseException:
            _roll_back(data_dir, aside)
            raise
        dsn = service_dsn(service, host="127.0.0.1" if request.to else None, port=runtime.port)
        with _prefetch(ws, service, chosen, data_dir):
            wait_prefetched(data_dir, needed_first(chosen), ws.clock)  # before the server asks
            hold("start")
            _start(runtime)
            hold("recovery")
            reached = _wait_for_promotion(runtime, dsn, request, ws.clock)
        running = True
        if request.to is not None and not request.keep_running:
            runtime.stop()
            running = False
        return RestoreOutcome(
            backup_id=chosen.backup.backup_id,
            target=chosen.target.describe(),
            data_dir=str(data_dir),
            moved_aside=str(aside) if aside else None,
            reached_lsn=reached.get("lsn"),
            reached_time=reached.get("time"),
            timeline=reached.get("timeline"),
            started_at=started,
            finished_at=ws.clock.now(),
            running=running,
            port=runtime.port,
        )


def _restore_container(
    ws: Workspace,
    service: Service,
    request: RestoreRequest,
    chosen: RestorePlan,
    started: datetime,
    progress: Callable[[int], None] | None,
) -> RestoreOutcome:
    """In place in a compose container's volume (engines/postgres/restore_compose.py)."""
    from drkit.engines.postgres.restore_compose import restore_in_container

    done = restore_in_container(
        ws,
        service,
        chosen,
        extract=lambda dest: _extract(
            ws,
            replace(service, runtime=replace(service.runtime, os_user=None)),
            chosen.links,
            dest,
            progress,
        ),
        archive_current=lambda: _archive_current_segment(service),
        timeout=request.timeout,
        stall=request.stall,
    )
    return RestoreOutcome(
        backup_id=chosen.backup.backup_id,
        target=chosen.target.describe(),
        data_dir=str(done.data_dir),
        moved_aside=str(done.aside),
        reached_lsn=done.reached.get("lsn"),
        reached_time=done.reached.get("time"),
        timeline=done.reached.get("timeline"),
        started_at=started,
        finished_at=ws.clock.now(),
        running=True,
        port=service.runtime.port,
    )


def _prefetch(ws: Workspace, service: Service, chosen: RestorePlan, data_dir: Path) -> Any:
    pg = chosen.backup.require_postgres()
    first = Segment.parse(chosen.first_segment, pg.wal_segment_size)
    last = Segment.parse(chosen.last_segment, pg.wal_segment_size) if chosen.last_segment else None
    return prefetching(archive_for(ws, service), data_dir, first, last, os_user=service.runtime.os_user)


def _prepare_target(
    ws: Workspace, service: Service, request: RestoreRequest
) -> tuple[LocalPostgres, Path, Path | None]:
    spec = service.runtime
    if request.to is not None:
        dest = request.to.resolve()
        if dest.exists() and any(dest.iterdir()):
            raise UsageError(f"{dest} exists and is not empty; restore never writes over data")
        if not dest.parent.is_dir():
            raise UsageError(f"{dest.parent} does not exist; create it first")
        blocked = traversable_by(dest.parent, spec.os_user)
        if blocked is not None:
            raise UsageError(
                f"the database user {spec.os_user} cannot enter {blocked}; restore somewhere "
                f"it can (PostgreSQL will run the restored copy as that user)"
            )
        if dest.exists():
            dest.rmdir()
        port = request.port or free_port()
        # The log lives in the restored directory's own log/ (the parent may not be writable
        # by the database user).
        local = RuntimeSpec(
            type="local",
            data_dir=str(dest),
            bin_dir=spec.bin_dir,
            port=port,
            os_user=spec.os_user,
            log_file=str(dest / "log" / "drkit-restore.log"),
        )
        return LocalPostgres(local), dest, None
    if spec.type != "local" or not spec.data_dir:
        raise UsageError(
            f"in-place restore of {service.name} needs a local runtime with data_dir "
            f"(this one is {spec.type}); restore --to DIR and switch the volume by hand"
        )
    runtime = LocalPostgres(spec)
    data_dir = Path(spec.data_dir)
    if request.target.kind is TargetKind.LATEST and runtime.is_running():
        _archive_current_segment(service)
    runtime.stop()
    stamp = ws.clock.now().strftime("%Y%m%dT%H%M%SZ")
    aside = data_dir.with_name(f"{data_dir.name}.before-restore-{stamp}")
    hold("move-aside")
    if data_dir.exists():
        data_dir.rename(aside)
    return runtime, data_dir, aside if aside.exists() else None


STARTING_UP = ("the database system is starting up", "not yet accepting connections")


def _archive_current_segment(service: Service) -> None:
    """Before replacing a running server with "latest": close and archive its current WAL
    segment, so the restore loses nothing that was committed (archive mode archives only
    complete segments). A server that cannot do it stops the restore: going on would
    silently drop what it holds. One still in recovery writes no WAL of its own."""
    try:
        with connect(service_dsn(service)) as conn:
            state = conn.execute("select pg_is_in_recovery(), current_setting('archive_mode')").fetchone()
            if state is None or state[0] or state[1] == "off":
                return  # in recovery; or no archiving (stream mode: the receiver has it)
            row = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()
            segment = str(row[0]) if row else ""

            def archived() -> bool:
                r = conn.execute("select last_archived_wal from pg_stat_archiver").fetchone()
                return bool(r and r[0] and r[0] >= segment)

            wait_for(archived, timeout=120, what=f"WAL segment {segment} to be archived")
    except (OperationError, psycopg.Error) as exc:
        if any(s in str(exc) for s in STARTING_UP):
            return  # still in recovery itself (an interrupted restore): it writes no WAL
        raise OperationError(
            f"the running {service.name} server could not archive its current WAL segment "
            f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); "
            f"restoring to latest now would lose it. Fix archiving (or stop the server "
            f"yourself to restore from what the archive holds) and rerun"
        ) from exc


def _roll_back(data_dir: Path, aside: Path | None) -> None:
    """A failed in-place restore puts the old directory back; the half-written one is kept
    beside it for inspection (renamed), never deleted."""
    if aside is None:
        return
    if data_dir.exists():
        data_dir.rename(data_dir.with_name(data_dir.name + ".failed-restore"))
    aside.rename(data_dir)


def _extract(
    ws: Workspace,
    service: Service,
    chain: tuple[Manifest, ...],
    dest: Path,
    progress: Callable[[int], None] | None,
) -> None:
    """The backup (an incremental: its whole chain, the full one first) written into `dest`."""
    policy = service.postgres

    def step(done: int) -> None:
        hold("extract")  # a part is written, others are not
        if progress:
            progress(done)

    extract_chain(
        ws.repo,
        ws.codec,
        ws.stack.name,
        service.name,
        chain,
        dest,
        parallel=restore_workers(policy.parallel if policy else 2),
        progress=step,
    )
    (dest / "log").mkdir(exist_ok=True)
    chown_tree(dest, service.runtime.os_user)


def _configure(
    ws: Workspace,
    service: Service,
    chosen: RestorePlan,
    data_dir: Path,
    request: RestoreRequest,
    drkit_argv: list[str],
    runtime: LocalPostgres,
) -> None:
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
    if request.own_archive and service.postgres and service.postgres.wal_mode is WalMode.ARCHIVE:
        settings["archive_command"] = archive_command(drkit_argv, ws.stack.source_path, service.name)
    if request.to is not None:
        settings["port"] = str(runtime.port)
        settings["listen_addresses"] = "127.0.0.1"
        settings["unix_socket_directories"] = ""
        if request.quarantine:
            # Barman's rule: a restored copy must never write into the live WAL archive.
            settings["archive_mode"] = "off"
            settings["archive_command"] = "false"
    write_recovery_settings(
        data_dir,
        settings,
        comment=f"drkit restore of {chosen.backup.backup_id} to {chosen.target.describe()}",
    )
    chown_tree(data_dir, service.runtime.os_user)


def _start(runtime: LocalPostgres) -> None:
    try:
        runtime.start()
    except OperationError:
        if not runtime.is_running():
            raise OperationError(f"recovery stopped: {failure_reason(runtime.log_file)}") from None
        # pg_ctl stopped waiting (after two minutes); recovery goes on: follow it instead.


def _wait_for_promotion(
    runtime: LocalPostgres, dsn: str, request: RestoreRequest, clock: Clock
) -> dict[str, Any]:
    def probe() -> RecoveryState:
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
        return follow_recovery(
            probe, limit=request.timeout, stall=request.stall, clock=clock, max_interval=0.2
        )
    except RecoveryStopped as exc:
        raise OperationError(f"recovery stopped: {exc}") from exc
