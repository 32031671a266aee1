"""Restore PostgreSQL from a base backup plus WAL to a target, into a new directory (the
default) or in place (the old data directory is moved aside, never deleted).

Every restore checks first, then acts: the plan (which backup, which WAL), then every file
it will read (preflight), before a service is stopped or a byte written. It compares the
point recovery reached with the plan before anything is started for clients. When it fails,
or is interrupted (SIGINT, SIGTERM), it stops the servers it started, removes what it
wrote (or puts the old data back, in place) and ends with one line saying what is left where.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from drkit.adapters.postgres.client import service_dsn
from drkit.adapters.postgres.tools import require_server_major
from drkit.domain.errors import Cancelled, IntegrityError, OperationError, UsageError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.recovery import TargetKind
from drkit.domain.stack import RuntimeSpec, Service, WalMode
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import lock_name
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.branches import resolve_timeline
from drkit.engines.postgres.extract import extract_backup
from drkit.engines.postgres.in_place import restore_local_in_place
from drkit.engines.postgres.outcome import RestoreOutcome, RestoreRequest, os_error, restore_failed, why
from drkit.engines.postgres.plan import ArchiveView, RestorePlan, plan_restore
from drkit.engines.postgres.preflight import Checked, check_inputs
from drkit.engines.postgres.replay import configure, recover, recovery_settings
from drkit.engines.postgres.targets import target_point
from drkit.engines.postgres.wal.archive import archive_for, timeline_paths
from drkit.engines.postgres.wal.stream import flush_spool
from drkit.engines.postgres.wal.times import CommitTimes
from drkit.infra import locks
from drkit.infra.interrupt import deferred, interruptible
from drkit.infra.ownership import chown_tree, traversable_by
from drkit.infra.ports import free_port
from drkit.runtimes.local_postgres import LocalPostgres

__all__ = ["RestoreOutcome", "RestoreRequest", "plan", "restore"]


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
    target = request.target
    if request.timeline is not None:  # the engine's pin (a drill, a runbook) over the target's
        target = replace(target, timeline=request.timeline)
    with CommitTimes(archive, service.runtime.bin_dir, ws.state_dir / "wal-times") as times:
        view = ArchiveView(frozenset(names), timeline_paths(archive, names), times)
        now = ws.clock.now()
        point = target_point(ws, service, target, archive, view, backups)  # a name: found, or refused
        timeline = resolve_timeline(backups, view, target, now, request.backup_id, point)
        broken_by = {d.backup_id: d.reason for d in listing.damaged}
        chosen = plan_restore(backups, view, target, now, request.backup_id, timeline, point, broken_by)
    archive.guard.require_system(
        chosen.backup.require_postgres().system_identifier, f"backup {chosen.backup.backup_id}"
    )
    return chosen


def restore(
    ws: Workspace,
    service: Service,
    request: RestoreRequest,
    *,
    drkit_argv: list[str],
    progress: Callable[[int], None] | None = None,
    report: Progress = SILENT,  # steps, and the extract's amount when `progress` is None
    planned: RestorePlan | None = None,
) -> RestoreOutcome:
    """`planned`: the plan `prepare_restore` made for this request and the operator saw (it is
    not made twice: planning reads every manifest and, for a time target, WAL)."""
    if request.in_place == (request.to is not None):
        raise UsageError("restore needs exactly one of --to DIR or --in-place")
    with locks.exclusive(ws.lock_dir, lock_name(service.name), "restore"), interruptible():
        try:
            return _restore(ws, service, request, drkit_argv, progress, report, planned)
        except KeyboardInterrupt as exc:  # before anything was changed (the flows say what they undid)
            raise Cancelled(f"{why(exc)}; nothing was changed") from exc
        except OSError as exc:
            raise OperationError(f"{os_error(exc)}; nothing was changed") from exc


def _restore(
    ws: Workspace,
    service: Service,
    request: RestoreRequest,
    drkit_argv: list[str],
    progress: Callable[[int], None] | None,
    report: Progress,
    planned: RestorePlan | None = None,
) -> RestoreOutcome:
    chosen = planned or plan(ws, service, request)  # the plan the operator saw is not made twice
    require_server_major(service.runtime.bin_dir, chosen.backup.require_postgres().server_version)
    report.step(f"check the inputs of {chosen.backup.backup_id} (every part and WAL segment)")
    checked = check_inputs(ws, service, chosen)  # before any service is stopped
    started = ws.clock.now()
    parts = sum(f.raw_size for m in chosen.links for f in m.files if f.name.startswith("base."))
    progress = progress or report.meter(f"extract {chosen.backup.backup_id}", total=parts or None)

    def replan() -> tuple[RestorePlan, Checked]:
        """After the old server stopped and its WAL was saved: the same backup, the WAL now."""
        again = plan(ws, service, replace(request, backup_id=chosen.backup.backup_id))
        return again, check_inputs(ws, service, again)

    if request.in_place and service.runtime.type == "compose":
        from drkit.engines.postgres.restore_compose import restore_in_container

        return restore_in_container(
            ws, service, request, chosen, checked, started=started, progress=progress, replan=replan
        )
    if request.in_place:
        return restore_local_in_place(
            ws,
            service,
            request,
            chosen,
            checked,
            drkit_argv=drkit_argv,
            progress=progress,
            started=started,
            replan=replan,
            report=report,
        )
    return _restore_to(ws, service, request, chosen, checked, drkit_argv, progress, started, report)


def _restore_to(
    ws: Workspace,
    service: Service,
    request: RestoreRequest,
    chosen: RestorePlan,
    checked: Checked,
    drkit_argv: list[str],
    progress: Callable[[int], None] | None,
    started: datetime,
    report: Progress,
) -> RestoreOutcome:
    runtime, dest, existed = _prepare_dest(service, request)
    try:
        extract_backup(ws, service, chosen.links, checked, dest, progress)
        (dest / "log").mkdir(exist_ok=True)
        chown_tree(dest / "log", service.runtime.os_user)
        settings = recovery_settings(ws, service, chosen, dest, drkit_argv, own_archive=request.own_archive)
        settings["port"] = str(runtime.port)
        settings["listen_addresses"] = "127.0.0.1"
        settings["unix_socket_directories"] = ""
        if request.quarantine:
            # Barman's rule: a restored copy must never write into the live WAL archive.
            settings["archive_mode"] = "off"
            settings["archive_command"] = "false"
        configure(dest, settings, chosen, service.runtime.os_user)
        dsn = service_dsn(service, host="127.0.0.1", port=runtime.port)
        reached = recover(
            ws, service, chosen, runtime, dsn, timeout=request.timeout, stall=request.stall, report=report
        )
        running = True
        if not request.keep_running:
            runtime.stop()
            running = False
    except BaseException as exc:
        with deferred():
            log = ws.state_dir / "restore-logs" / f"{dest.name}-{started:%Y%m%dT%H%M%SZ}.log"
            left = discard_new_directory(runtime, dest, existed, keep_log=log)
        raise restore_failed(exc, left) from exc
    return RestoreOutcome(
        backup_id=chosen.backup.backup_id,
        target=chosen.target.describe(),
        data_dir=str(dest),
        moved_aside=None,
        reached_lsn=reached.get("lsn"),
        reached_time=reached.get("time"),
        timeline=reached.get("timeline"),
        started_at=started,
        finished_at=ws.clock.now(),
        running=running,
        port=runtime.port,
    )


def _prepare_dest(service: Service, request: RestoreRequest) -> tuple[LocalPostgres, Path, bool]:
    """The new directory's server (a free loopback port); the directory must be empty or
    absent (it is removed here and made again by the extraction)."""
    spec = service.runtime
    dest = (request.to or Path()).resolve()
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
    existed = dest.exists()
    if existed:
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
    return LocalPostgres(local), dest, existed


def discard_new_directory(runtime: LocalPostgres, dest: Path, existed: bool, *, keep_log: Path) -> str:
    """A restore into a new directory failed: stop its server, remove what it wrote (the
    directory was empty or absent before), keeping the server's log. Returns what is left
    where."""
    said = []
    pid = runtime.pid()
    if pid is not None:
        try:
            runtime.stop()
            said.append(f"stopped the restored server (pid {pid})")
        except OperationError as exc:
            return f"the restored server (pid {pid}) did not stop ({exc.message}); {dest} is left as it is"
    log = Path(runtime.log_file)
    if log.is_file() and log.is_relative_to(dest):
        try:
            keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(log, keep_log)
            said.append(f"its log is kept at {keep_log}")
        except OSError:
            pass
    if dest.exists():
        shutil.rmtree(dest, ignore_errors=True)
    if dest.exists():
        said.append(f"{dest} is left, partly written (remove it: rm -rf -- {dest})")
    else:
        if existed:
            dest.mkdir(mode=0o700)
        said.append(f"removed what it wrote in {dest}")
    return "; ".join(said)
