"""PostgreSQL backups: physical base backups (for PITR) and logical dumps (portable).

A backup is written part by part under its directory; the manifest goes last (the commit
point). A run killed midway leaves files without a manifest: they never list as a backup,
and the next run of the same service (holding the lock) removes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from drkit.adapters.postgres.basebackup import StreamedBackup, pg_basebackup_args, stream_base_backup
from drkit.adapters.postgres.client import make_dsn, service_dsn
from drkit.adapters.postgres.counts import RowCounts, cheap_counts, exported_snapshot
from drkit.adapters.postgres.dump import dump_args, globals_args, run_dump
from drkit.adapters.postgres.server import ServerInfo, next_xid, server_info
from drkit.adapters.postgres.tarindex import members_to_json
from drkit.adapters.postgres.toolhost import ToolHost, tool_file, tool_host
from drkit.domain.backup import (
    INCREMENTAL_FORMAT,
    MANIFEST_FORMAT,
    BackupKind,
    Manifest,
    PostgresInfo,
    StoredFile,
)
from drkit.domain.stack import PostgresPolicy, Service
from drkit.engines.core.commit import (
    BackupResult,
    Progress,
    backup_lock,
    clean_incomplete,
    commit_manifest,
    part_sink,
    put_small,
    unique_id,
)
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace

TAR_INDEX = "tarindex.json"


def _policy(service: Service) -> PostgresPolicy:
    return service.postgres or PostgresPolicy()


def _with_level(ws: Workspace, service: Service) -> Workspace:
    return replace(ws, codec=replace(ws.codec, level=_policy(service).compress_level))


@dataclass(frozen=True)
class IncrementalFrom:
    """A PostgreSQL 17+ incremental backup's parent, and its backup_manifest (which
    `pg_basebackup --incremental` hands the server to say what the parent holds)."""

    parent: Manifest
    backup_manifest: bytes


def base_backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """pg_basebackup -> parallel compressed parts + tar index + manifest (last)."""
    with backup_lock(ws, service.name):
        return take_base_backup(ws, service, progress=progress)


def take_base_backup(
    ws: Workspace,
    service: Service,
    *,
    progress: Progress | None = None,
    incremental: IncrementalFrom | None = None,
    details: dict[str, Any] | None = None,
) -> BackupResult:
    """A base backup, under the service's backup lock (held by the caller): a full one, or
    with `incremental` what changed since that parent (PostgreSQL 17+)."""
    policy = _policy(service)
    dsn = service_dsn(service)
    ws = _with_level(ws, service)
    removed = clean_incomplete(ws, service.name)
    info = server_info(dsn)
    started = ws.clock.now()
    label = "incr" if incremental else None
    backup_id = unique_id(ws, service.name, BackupKind.BASE, started, label=label)
    directory = backup_dir(ws.stack.name, service.name, backup_id)
    xid_before = next_xid(dsn)
    with tool_host(service, dsn) as host, parent_manifest(host, incremental) as parent_file:
        args = pg_basebackup_args(
            host.login, service.runtime.bin_dir, policy.checkpoint, f"drkit {backup_id}", policy.max_rate
        )
        if parent_file is not None:
            args.append(f"--incremental={parent_file}")
        tool_versions = {"pg_basebackup": host.version("pg_basebackup", service.runtime.bin_dir)}
        streamed = stream_base_backup(
            host.argv(args),
            part_sink(ws, directory, "base", ".tar"),
            login=host.login,
            part_size=policy.part_size,
            parallel=policy.parallel,
            timeout=6 * 3600,
            progress=progress,
        )
    manifest = commit_base_backup(
        ws,
        service,
        BaseTaken(backup_id, started, streamed, info, tool_versions, xid_before),
        parent=incremental.parent if incremental else None,
        method="native",
        details=details,
    )
    return BackupResult(manifest, removed)


@dataclass(frozen=True)
class BaseTaken:
    """A base backup's stream, stored; what its manifest records besides."""

    backup_id: str
    started: datetime
    streamed: StreamedBackup
    info: ServerInfo
    tool_versions: dict[str, str]
    xid_before: int
    extra: tuple[StoredFile, ...] = ()  # more files of the backup, stored already


def commit_base_backup(
    ws: Workspace,
    service: Service,
    taken: BaseTaken,
    *,
    parent: Manifest | None,
    method: str,
    details: dict[str, Any] | None = None,
) -> Manifest:
    """The tar index, the row counts, then the manifest (the commit point)."""
    policy = _policy(service)
    dsn = service_dsn(service)
    streamed, info = taken.streamed, taken.info
    directory = backup_dir(ws.stack.name, service.name, taken.backup_id)
    index = put_small(ws, directory, TAR_INDEX, members_to_json(streamed.members))
    counted = cheap_counts(dsn, policy.databases or _current_db(dsn))
    xid_after = next_xid(dsn)
    counts = counted.counts
    manifest = Manifest(
        backup_id=taken.backup_id,
        stack=ws.stack.name,
        service=service.name,
        kind=BackupKind.BASE,
        started_at=taken.started,
        finished_at=ws.clock.now(),
        files=(*streamed.parts, index, *taken.extra),
        tool_versions=taken.tool_versions,
        compression=f"zstd-{ws.codec.level}",
        encrypted=ws.codec.encrypted,
        format=INCREMENTAL_FORMAT if parent else MANIFEST_FORMAT,
        postgres=PostgresInfo(
            start_lsn=str(streamed.start_lsn),
            stop_lsn=str(streamed.stop_lsn),
            timeline=streamed.timeline,
            wal_segment_size=info.wal_segment_size,
            server_version=info.version_num,
            system_identifier=info.system_identifier,
            row_counts=counts,
            databases=sorted({k.split(":", 1)[0] for k in counts}),
            **_chain_fields(parent, method),
        ),
        details={
            "format": "tar stream split in parts; cat parts | zstd -d | tar -x",
            "part_size": policy.part_size,
            "raw_bytes": streamed.raw_bytes,
            "members": len(streamed.members),
            "tar_index": index.name,
            # No transaction wrote between the backup's start and the counts' end.
            "row_counts_exact": taken.xid_before == xid_after,
            "row_counts_estimated": sorted(counted.estimated),
            "block_size": int(info.settings.get("block_size", "8192")),
            **(details or {}),
        },
    )
    commit_manifest(ws, manifest)
    return manifest


def _chain_fields(parent: Manifest | None, method: str) -> dict[str, Any]:
    """The PostgresInfo fields that make a backup the next link of its parent's chain."""
    if parent is None:
        return {}
    pg = parent.require_postgres()
    return {"incremental": method, "parent": parent.backup_id, "chain": (*pg.chain, parent.backup_id)}


@contextmanager
def parent_manifest(host: ToolHost, incremental: IncrementalFrom | None) -> Iterator[str | None]:
    """Where pg_basebackup reads the parent's backup_manifest from (None: a full backup)."""
    if incremental is None:
        yield None
        return
    with tool_file(host, incremental.backup_manifest, "drkit-parent-manifest") as path:
        yield path


def _current_db(dsn: str) -> tuple[str, ...]:
    from psycopg import conninfo

    return (str(conninfo.conninfo_to_dict(dsn).get("dbname", "postgres")),)


def logical_backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """pg_dump -Fc (uncompressed, then zstd) per database, plus pg_dumpall --globals-only."""
    policy = _policy(service)
    dsn = service_dsn(service)
    databases = policy.databases or _current_db(dsn)
    ws = _with_level(ws, service)
    with backup_lock(ws, service.name):
        removed = clean_incomplete(ws, service.name)
        info = server_info(dsn)
        started = ws.clock.now()
        backup_id = unique_id(ws, service.name, BackupKind.LOGICAL, started)
        directory = backup_dir(ws.stack.name, service.name, backup_id)
        files: list[StoredFile] = []
        digests: dict[str, str] = {}
        counts = RowCounts()
        bin_dir = service.runtime.bin_dir
        for db in databases:
            digest = hashlib.sha256()
            # The counts are taken in the snapshot pg_dump then dumps: they are the dump's.
            with (
                exported_snapshot(dsn, db) as (snapshot, counted),
                tool_host(service, make_dsn(dsn, dbname=db)) as host,
            ):
                parts, _raw = run_dump(
                    host.argv([*dump_args(host.login, bin_dir), f"--snapshot={snapshot}"]),
                    part_sink(ws, directory, f"{db}.dump"),
                    login=host.login,
                    part_size=policy.part_size,
                    parallel=policy.parallel,
                    observe=digest.update,
                )
            counts.merge(counted)
            files.extend(parts)
            digests[db] = digest.hexdigest()
        with tool_host(service, dsn) as host:
            dump_version = host.version("pg_dump", bin_dir)
            globals_parts, _ = run_dump(
                host.argv(globals_args(host.login, bin_dir)),
                part_sink(ws, directory, "globals.sql"),
                login=host.login,
                part_size=policy.part_size,
                parallel=1,
            )
        files.extend(globals_parts)
        manifest = Manifest(
            backup_id=backup_id,
            stack=ws.stack.name,
            service=service.name,
            kind=BackupKind.LOGICAL,
            started_at=started,
            finished_at=ws.clock.now(),
            files=tuple(files),
            tool_versions={"pg_dump": dump_version},
            compression=f"zstd-{ws.codec.level}",
            encrypted=ws.codec.encrypted,
            details={
                "databases": list(databases),
                "server_version": info.version_num,
                "dump_sha256": digests,
                "row_counts": counts.counts,
                "row_counts_estimated": sorted(counts.estimated),
                "format": "pg_dump -Fc -Z0 split in parts; cat DB.dump.*.zst | zstd -d > DB.dump",
            },
        )
        commit_manifest(ws, manifest)
        return BackupResult(manifest, removed)
