"""In-place restore of a PostgreSQL service run as a compose container (nself's).

The same flow as a local in-place restore (in_place.py): an interrupted earlier restore
undone first; the container handed over as a local server is (handover.py): stopped
through the runtime, what its pg_wal holds that the archive lacks saved, the volume's
contents moved aside inside the volume (infra/aside.py; named
`pgsql_tmp.drkit-before-restore-STAMP/` when the volume is PGDATA itself, a name
pg_basebackup leaves out of base backups); the base backup extracted where the container's
PGDATA lies (the mount point from `docker volume inspect`), given to the image's postgres
uid, the recovery settings written and the server kept away from clients (no TCP,
isolation.py) until the point it reached is checked; then it is started again for clients.
A failure or a signal puts the old contents back and starts the container again.

drkit is not installed in the container, so restore_command cannot run `drkit wal-fetch`.
It reads WAL from `drkit-prefetch/` in the data directory, which drkit fills from this
host with the same spool server a local restore uses (engines/postgres/wal/spool.py):
ahead of recovery, and on request for anything else (the server's restore_command leaves
`.want-NAME`; drkit answers with NAME, `.absent-NAME` when the archive has no such file,
which ends recovery as PostgreSQL expects, or `.error-NAME`, which stops it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.adapters.postgres.recovery_conf import target_timeline_setting, write_recovery_settings
from drkit.adapters.postgres.toolhost import tool_host
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.recovery import TargetKind
from drkit.domain.stack import Service
from drkit.domain.wal import Segment
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.extract import extract_backup
from drkit.engines.postgres.handover import Live, Replan, reached_facts, stop_and_move
from drkit.engines.postgres.in_place import finish_interrupted, ledger_path
from drkit.engines.postgres.isolation import isolate_in_conf, release_in_conf, restore_in_progress
from drkit.engines.postgres.outcome import RestoreOutcome, RestoreRequest, restore_failed
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.preflight import Checked
from drkit.engines.postgres.recovery_watch import RecoveryState, RecoveryStopped, follow_recovery
from drkit.engines.postgres.replay import check_reached
from drkit.engines.postgres.wal.archive import archive_for
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR, prefetch_restore_command, prefetching
from drkit.engines.postgres.wal.spool import request_command
from drkit.infra.aside import Aside, in_use, move_aside, roll_back, settle
from drkit.infra.clock import Clock
from drkit.infra.hold import hold
from drkit.infra.interrupt import deferred
from drkit.infra.proc import run
from drkit.runtimes.compose import ComposeRuntime

WAIT_SECONDS = 600
ANSWER_SECONDS = 300.0


@dataclass(frozen=True)
class Target:
    """The container's data directory: on this host, inside the container, and its owner."""

    runtime: ComposeRuntime
    volume_root: Path
    host_dir: Path
    inside_dir: str
    uid: int
    gid: int


def locate(service: Service) -> Target:
    runtime = ComposeRuntime(service.runtime, name=service.name)
    volume, mounted_at = runtime.volume_mount()
    root = Path(runtime.volume_path(volume))
    pgdata = runtime.env().get("PGDATA", mounted_at)
    relative = os.path.relpath(pgdata, mounted_at)
    if relative.startswith(".."):
        raise UsageError(f"{service.name}: PGDATA {pgdata} is not in the volume {volume} ({mounted_at})")
    host_dir = root / relative if relative != "." else root
    version = host_dir / "PG_VERSION"
    if version.exists():
        st = version.stat()
        uid, gid = st.st_uid, st.st_gid
    else:
        uid, gid = runtime.image_ids(service.runtime.os_user or "postgres")
    return Target(runtime, root, host_dir, pgdata, uid, gid)


def chown_ids(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() != 0:
        return
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def restore_in_container(
    ws: Workspace,
    service: Service,
    request: RestoreRequest,
    chosen: RestorePlan,
    checked: Checked,
    *,
    started: datetime,
    progress: Callable[[int], None] | None,
    replan: Replan,
) -> RestoreOutcome:
    """Stop, save the old WAL, move aside, extract, configure, start isolated, follow
    recovery, check the point reached, start for clients (the module's docstring)."""
    target = locate(service)
    runtime = target.runtime
    notes: list[str] = []
    undone = finish_interrupted(ws, service, stop=runtime.stop, live=target.volume_root)
    if undone is not None:
        notes.append(undone.note)
    was_running = bool(undone and undone.was_running) or (
        runtime.is_running() and not restore_in_progress(target.host_dir)
    )
    handed = Live(
        data_dir=target.host_dir,
        running=was_running,
        archive_first=True,
        stop=runtime.stop,
        start_again=lambda: _start_again(ws, service, runtime, was_running),
        move_aside=lambda: move_aside(
            target.volume_root,
            "before-restore",
            now=ws.clock.now(),
            inside=True,
            # In PGDATA itself: a name pg_basebackup skips (it leaves out pgsql_tmp*).
            prefix="pgsql_tmp." if target.host_dir == target.volume_root else ".",
            ledger=ledger_path(ws, service),
            facts={"was_running": "yes" if was_running else "no"},
        ),
    )
    aside, chosen, checked = stop_and_move(ws, service, handed, chosen, checked, replan, notes)
    plain = replace(service, runtime=replace(service.runtime, os_user=None))
    try:
        _extract_into(target, lambda dest: extract_backup(ws, plain, chosen.links, checked, dest, progress))
        _configure(chosen, target)
        reached = _recover(ws, service, target, chosen, request)
        runtime.stop()
        release_in_conf(target.host_dir)
        aside = in_use(aside, reached_facts(reached))
        hold("clients")
        runtime.start()
        _follow(service, runtime, timeout=ANSWER_SECONDS, stall=ANSWER_SECONDS, clock=ws.clock)
    except BaseException as exc:
        with deferred():
            left, ok = _put_back(ws, service, target, aside, was_running)
        raise restore_failed(exc, left, rolled_back=ok) from exc
    finished = ws.clock.now()
    settle(aside, {"postgres_healthy_at": finished.isoformat()})
    return RestoreOutcome(
        backup_id=chosen.backup.backup_id,
        target=chosen.target.describe(),
        data_dir=str(target.host_dir),
        moved_aside=str(aside.path) if aside.path else None,
        reached_lsn=reached.get("lsn"),
        reached_time=reached.get("time"),
        timeline=reached.get("timeline"),
        started_at=started,
        finished_at=finished,
        running=True,
        port=service.runtime.port,
        notes=tuple(notes),
    )


def _recover(
    ws: Workspace, service: Service, target: Target, chosen: RestorePlan, request: RestoreRequest
) -> dict[str, Any]:
    archive = archive_for(ws, service)
    pg = chosen.backup.require_postgres()
    first = Segment.parse(chosen.first_segment, pg.wal_segment_size)
    last = Segment.parse(chosen.last_segment, pg.wal_segment_size) if chosen.last_segment else None
    owner = (target.uid, target.gid)
    with prefetching(archive, target.host_dir, first, last, os_user=None, owner=owner, path=chosen.path):
        hold("start")
        target.runtime.start()
        hold("recovery")
        reached = _follow(
            service, target.runtime, timeout=request.timeout, stall=request.stall, clock=ws.clock
        )
        hold("promoted")
    check_reached(chosen, reached.get("lsn"), archive)
    return reached


def _start_again(
    ws: Workspace, service: Service, runtime: ComposeRuntime, was_running: bool
) -> tuple[str, bool]:
    if not was_running:
        return f"{runtime.description} was not running and stays stopped", True
    try:
        runtime.start()
        _follow(service, runtime, timeout=ANSWER_SECONDS, stall=ANSWER_SECONDS, clock=ws.clock)
    except OperationError as exc:
        return f"{runtime.description} did not come back: {exc.message}", False
    return f"{runtime.description} runs again", True


def _put_back(
    ws: Workspace, service: Service, target: Target, aside: Aside, was_running: bool
) -> tuple[str, bool]:
    said = []
    try:
        target.runtime.stop()
    except OperationError as exc:
        return (
            f"{target.runtime.description} did not stop ({exc.message}); "
            f"the old data is in {aside.describe()}",
            False,
        )
    try:
        leftover = roll_back(aside, now=ws.clock.now())
    except OperationError as exc:
        return exc.message, False
    said.append(f"the volume's contents from before the restore are back in {target.volume_root}")
    if leftover is not None:
        said.append(f"the half-restored data is left in {leftover} (remove it: rm -rf -- {leftover})")
    text, ok = _start_again(ws, service, target.runtime, was_running)
    return "; ".join([*said, text]), ok


def _extract_into(target: Target, extract: Callable[[Path], None]) -> None:
    """Extract beside (restore never writes into an existing directory, and the volume's
    root is one), then move the files in: renames within the volume."""
    staging = target.volume_root / ".drkit-restoring"
    extract(staging)
    target.host_dir.mkdir(parents=True, exist_ok=True)
    for entry in os.listdir(staging):
        os.rename(staging / entry, target.host_dir / entry)
    staging.rmdir()


def _configure(chosen: RestorePlan, target: Target) -> None:
    spool = f"{target.inside_dir}/{PREFETCH_DIR}"
    settings = {
        "restore_command": prefetch_restore_command(
            Path(target.inside_dir), request_command(spool, WAIT_SECONDS)
        ),
        **chosen.target.settings(),
        **target_timeline_setting(chosen.timeline),
    }
    if chosen.target.kind is not TargetKind.LATEST:
        settings["recovery_target_action"] = "promote"
    pg = chosen.backup.postgres
    if pg is not None and pg.server_version >= 140000:
        settings["recovery_init_sync_method"] = "syncfs"
    write_recovery_settings(
        target.host_dir,
        settings,
        comment=f"drkit restore of {chosen.backup.backup_id} to {chosen.target.describe()}",
    )
    isolate_in_conf(target.host_dir)
    chown_ids(target.host_dir, target.uid, target.gid)


STATE_SQL = (
    "select pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn()::text, ''), "
    "coalesce(extract(epoch from pg_last_xact_replay_timestamp())::text, ''), "
    "case when pg_is_in_recovery() then '' else "
    "(('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int)::text end"
)


def _follow(
    service: Service, runtime: ComposeRuntime, *, timeout: float, stall: float, clock: Clock
) -> dict[str, Any]:
    """Ask the server inside the container (psql over its socket) until it is promoted."""
    from drkit.adapters.postgres.client import service_dsn

    def probe() -> RecoveryState:
        if not runtime.is_running():
            raise RecoveryStopped(_last_log_line(runtime))
        with tool_host(service, service_dsn(service)) as host:
            args = ["psql", "-X", "-A", "-t", "-F", "|", "-d", host.login.dsn, "-c", STATE_SQL]
            result = run(host.argv(args), timeout=30, check=False)
        if result.returncode != 0:
            return RecoveryState(position=None)  # not taking connections yet
        fields = result.stdout.strip().split("|")
        if len(fields) != 4 or fields[0] == "t":
            return RecoveryState(position=f"LSN {fields[1]}" if len(fields) > 1 and fields[1] else None)
        when = datetime.fromtimestamp(float(fields[2]), tz=UTC) if fields[2] else None
        return RecoveryState(promoted={"lsn": fields[1] or None, "time": when, "timeline": int(fields[3])})

    try:
        return follow_recovery(probe, limit=timeout, stall=stall, clock=clock)
    except RecoveryStopped as exc:
        raise OperationError(f"recovery stopped: {exc}") from exc


def _last_log_line(runtime: ComposeRuntime) -> str:
    lines = [line for line in runtime.logs(tail=30).splitlines() if "FATAL" in line or "PANIC" in line]
    return lines[-1] if lines else f"{runtime.description} exited during recovery"
