"""PostgreSQL backups: physical base backups (for PITR) and logical dumps (portable).

A backup is written part by part under its directory; the manifest goes last (the commit
point). A run killed midway leaves files without a manifest: they never list as a backup,
and the next run of the same service (holding the lock) removes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from drkit.adapters.postgres.basebackup import pg_basebackup_args, stream_base_backup
from drkit.adapters.postgres.client import make_dsn, service_dsn
from drkit.adapters.postgres.counts import RowCounts, cheap_counts, exported_snapshot
from drkit.adapters.postgres.dump import dump_args, globals_args, run_dump
from drkit.adapters.postgres.server import next_xid, server_info
from drkit.adapters.postgres.tarindex import members_to_json
from drkit.adapters.postgres.toolhost import tool_host
from drkit.domain.backup import BackupKind, Manifest, PostgresInfo, StoredFile
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


def base_backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """pg_basebackup -> parallel compressed parts + tar index + manifest (last)."""
    policy = _policy(service)
    dsn = service_dsn(service)
    ws = _with_level(ws, service)
    with backup_lock(ws, service.name):
        removed = clean_incomplete(ws, service.name)
        info = server_info(dsn)
        started = ws.clock.now()
        backup_id = unique_id(ws, service.name, BackupKind.BASE, started)
        directory = backup_dir(ws.stack.name, service.name, backup_id)
        xid_before = next_xid(dsn)
        with tool_host(service, dsn) as host:
            args = pg_basebackup_args(
                host.login, service.runtime.bin_dir, policy.checkpoint, f"drkit {backup_id}", policy.max_rate
            )
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
        index = put_small(ws, directory, TAR_INDEX, members_to_json(streamed.members))
        counted = cheap_counts(dsn, policy.databases or _current_db(dsn))
        xid_after = next_xid(dsn)
        counts = counted.counts
        manifest = Manifest(
            backup_id=backup_id,
            stack=ws.stack.name,
            service=service.name,
            kind=BackupKind.BASE,
            started_at=started,
            finished_at=ws.clock.now(),
            files=(*streamed.parts, index),
            tool_versions=tool_versions,
            compression=f"zstd-{ws.codec.level}",
            encrypted=ws.codec.encrypted,
            postgres=PostgresInfo(
                start_lsn=str(streamed.start_lsn),
                stop_lsn=str(streamed.stop_lsn),
                timeline=streamed.timeline,
                wal_segment_size=info.wal_segment_size,
                server_version=info.version_num,
                system_identifier=info.system_identifier,
                row_counts=counts,
                databases=sorted({k.split(":", 1)[0] for k in counts}),
            ),
            details={
                "format": "tar stream split in parts; cat parts | zstd -d | tar -x",
                "part_size": policy.part_size,
                "raw_bytes": streamed.raw_bytes,
                "members": len(streamed.members),
                "tar_index": index.name,
                # No transaction wrote between the backup's start and the counts' end.
                "row_counts_exact": xid_before == xid_after,
                "row_counts_estimated": sorted(counted.estimated),
            },
        )
        commit_manifest(ws, manifest)
        return BackupResult(manifest, removed)


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
