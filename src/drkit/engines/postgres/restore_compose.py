"""In-place restore of a PostgreSQL service run as a compose container (nself's).

The container is stopped through the runtime; the volume's contents are moved aside inside
the volume (`.drkit-before-restore-STAMP/`, never deleted); the base backup is extracted
where the container's PGDATA lies (the mount point from `docker volume inspect`), given to
the image's postgres uid, and the recovery settings written; then the container is started.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drkit.adapters.postgres.recovery_conf import target_timeline_setting, write_recovery_settings
from drkit.adapters.postgres.toolhost import tool_host
from drkit.domain.backup import Manifest
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.recovery import TargetKind
from drkit.domain.stack import Service
from drkit.domain.wal import Segment
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.recovery_watch import RecoveryState, RecoveryStopped, follow_recovery
from drkit.engines.postgres.wal.archive import archive_for
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR, prefetch_restore_command, prefetching
from drkit.engines.postgres.wal.spool import request_command
from drkit.infra.clock import Clock
from drkit.infra.hold import hold
from drkit.infra.proc import run
from drkit.runtimes.compose import ComposeRuntime

ASIDE_PREFIX = ".drkit-before-restore-"
FAILED_PREFIX = ".drkit-failed-restore-"
WAIT_SECONDS = 600


@dataclass(frozen=True)
class ContainerRestore:
    data_dir: Path
    aside: Path
    reached: dict[str, Any]


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


def move_aside(root: Path, stamp: str) -> Path:
    """Every entry of the volume into `.drkit-before-restore-STAMP/` inside it (a rename on
    the same file system); earlier asides stay where they are."""
    aside = root / f"{ASIDE_PREFIX}{stamp}"
    aside.mkdir(mode=0o700)
    for entry in os.listdir(root):
        if not entry.startswith((ASIDE_PREFIX, FAILED_PREFIX)):
            os.rename(root / entry, aside / entry)
    return aside


def roll_back(root: Path, aside: Path) -> None:
    """Put the old contents back; keep the half-written ones in `.drkit-failed-restore/`."""
    failed = root / f"{FAILED_PREFIX}{aside.name[len(ASIDE_PREFIX) :]}"
    failed.mkdir(mode=0o700)
    for entry in os.listdir(root):
        if not entry.startswith((ASIDE_PREFIX, FAILED_PREFIX)):
            os.rename(root / entry, failed / entry)  # .drkit-restoring too
    for entry in os.listdir(aside):
        os.rename(aside / entry, root / entry)
    aside.rmdir()


def restore_in_container(
    ws: Workspace,
    service: Service,
    chosen: RestorePlan,
    *,
    extract: Callable[[Path], None],
    archive_current: Callable[[], None],
    timeout: float,
    stall: float,
) -> ContainerRestore:
    """Stop, move aside, extract (through `extract`), configure, start, follow recovery."""
    target = locate(service)
    runtime = target.runtime
    if chosen.target.kind is TargetKind.LATEST and runtime.is_running():
        archive_current()
    runtime.stop()
    hold("move-aside")
    aside = move_aside(target.volume_root, ws.clock.now().strftime("%Y%m%dT%H%M%SZ"))
    try:
        _extract_into(target, extract)
        _configure(chosen, target)
    except BaseException:
        roll_back(target.volume_root, aside)
        raise
    archive = archive_for(ws, service)
    pg = chosen.backup.require_postgres()
    first = Segment.parse(chosen.first_segment, pg.wal_segment_size)
    last = Segment.parse(chosen.last_segment, pg.wal_segment_size) if chosen.last_segment else None
    owner = (target.uid, target.gid)
    with prefetching(archive, target.host_dir, first, last, os_user=None, owner=owner, path=chosen.path):
        hold("start")
        runtime.start()
        hold("recovery")
        reached = _follow(service, runtime, chosen.backup, timeout=timeout, stall=stall, clock=ws.clock)
    return ContainerRestore(target.host_dir, aside, reached)


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
    chown_ids(target.host_dir, target.uid, target.gid)


STATE_SQL = (
    "select pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn()::text, ''), "
    "coalesce(extract(epoch from pg_last_xact_replay_timestamp())::text, ''), "
    "case when pg_is_in_recovery() then '' else "
    "(('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int)::text end"
)


def _follow(
    service: Service, runtime: ComposeRuntime, backup: Manifest, *, timeout: float, stall: float, clock: Clock
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
