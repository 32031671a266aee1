"""`drkit backup --type incremental`: what changed since the newest base backup of the same
cluster, chained to it.

- PostgreSQL 17+: `pg_basebackup --incremental=<the parent's backup_manifest>`; the server
  sends, from its WAL summaries (`summarize_wal = on`), only the blocks changed since the
  parent started.
- Below 17: drkit's own delta (delta_backup.py), which needs to read the data directory.

When an incremental cannot be taken (no earlier backup of this cluster and timeline, a chain
already `MAX_CHAIN` long, summarize_wal off or its summaries not reaching back to the parent,
no access to the data directory below 17), a full base backup is taken instead and its
manifest says why (`details.full_because`), as pgBackRest does: the scheduled job still
leaves a backup behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.adapters.postgres.server import ServerInfo, server_info
from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.chains import Catalog, broken_chains, chain_of
from drkit.engines.core.commit import BackupResult, Progress, backup_lock
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.backup import IncrementalFrom, take_base_backup
from drkit.engines.postgres.stored_member import read_member

MAX_CHAIN = 30  # incrementals after one full backup; the next backup is a full one
NATIVE = 170000  # PostgreSQL 17: pg_basebackup --incremental


@dataclass(frozen=True)
class ParentChoice:
    parent: Manifest | None
    why_full: str = ""  # when there is no parent


def incremental_backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """An incremental base backup on its parent, or a full one saying why not."""
    dsn = service_dsn(service)
    with backup_lock(ws, service.name):
        info = server_info(dsn)
        choice = choose_parent(ws, service, info, dsn)
        if choice.parent is None:
            return take_base_backup(ws, service, progress=progress, details={"full_because": choice.why_full})
        parent = choice.parent
        if info.version_num >= NATIVE:
            directory = backup_dir(ws.stack.name, service.name, parent.backup_id)
            manifest = read_member(ws.repo, ws.codec, directory, parent, "backup_manifest")
            return take_base_backup(
                ws, service, progress=progress, incremental=IncrementalFrom(parent, manifest)
            )
        from drkit.engines.postgres.delta_backup import take_delta_backup

        return take_delta_backup(ws, service, parent, progress=progress)


def choose_parent(ws: Workspace, service: Service, info: ServerInfo, dsn: str) -> ParentChoice:
    """The newest base backup of this cluster, on its current timeline, whose chain is whole."""
    listing = list_backups(ws.repo, ws.stack.name, service.name)
    catalog = Catalog.of(listing.complete, ((d.backup_id, d.reason) for d in listing.damaged))
    broken = broken_chains(catalog)
    major = info.version_num // 10000
    fit = [
        m
        for m in listing.complete
        if m.kind is BackupKind.BASE
        and m.postgres is not None
        and m.backup_id not in broken
        and m.postgres.system_identifier == info.system_identifier
        and m.postgres.timeline == info.timeline
        and m.postgres.server_version // 10000 == major
    ]
    if not fit:
        return ParentChoice(
            None, f"no earlier base backup of this cluster on timeline {info.timeline} to build on"
        )
    parent = max(fit, key=lambda m: (m.finished_at, m.backup_id))
    incrementals = len(chain_of(parent, catalog)) - 1
    if incrementals >= MAX_CHAIN:
        return ParentChoice(
            None, f"the chain of {parent.backup_id} already holds {incrementals} incrementals"
        )
    why = _native_blocker(info, parent, dsn) if info.version_num >= NATIVE else _delta_blocker(service, info)
    return ParentChoice(None, why) if why else ParentChoice(parent)


def _native_blocker(info: ServerInfo, parent: Manifest, dsn: str) -> str:
    """Why PostgreSQL 17+ cannot send what changed since `parent`; "" when it can."""
    if info.settings.get("summarize_wal") != "on":
        return (
            "summarize_wal is off: PostgreSQL 17+ needs it on for incremental backups "
            "(ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf())"
        )
    pg = parent.require_postgres()
    if pg.incremental not in (None, "native"):
        return f"{parent.backup_id} is a {pg.incremental} backup; PostgreSQL 17+ builds only on its own"
    with connect(dsn) as conn:
        row = conn.execute(
            "select coalesce(min(start_lsn) <= %s::pg_lsn, false) from pg_available_wal_summaries() "
            "where tli = %s",
            (pg.start_lsn, pg.timeline),
        ).fetchone()
    if not (row and row[0]):
        return (
            f"the server's WAL summaries do not reach back to where {parent.backup_id} started "
            f"({pg.start_lsn}): summarize_wal was turned on after it, or wal_summary_keep_time removed them"
        )
    return ""


def _delta_blocker(service: Service, info: ServerInfo) -> str:
    """Why drkit's own delta cannot be taken below 17; "" when it can."""
    from drkit.engines.postgres.delta_source import data_dir_blocker

    return data_dir_blocker(service, info)
