"""Redis backups (the `redis` kind).

A backup is the server's own files: the RDB from a BGSAVE and, when AOF is on, every base
and incr file of its Redis 7 multi-part AOF with the AOF manifest, copied at one moment
(adapters/redis/snapshot.py). Each copy passes redis-check-rdb / redis-check-aof before
anything is stored, then goes to the repository in zstd (and age) parts; the manifest is
written last and records the key counts, a sample of key digests, the Redis version and
whether AOF was on. A backup removes no other backup: `drkit prune` does, by the service's
retention (keep_last defaults to KEEP_LAST for Redis: engines/ops/prune.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drkit.adapters.redis.checks import Verdict
from drkit.adapters.redis.snapshot import Snapshot, StagedFile, take_snapshot
from drkit.domain.backup import BackupKind, Manifest, StoredFile
from drkit.domain.errors import IntegrityError
from drkit.domain.stack import Service
from drkit.engines.core.commit import (
    BackupResult,
    Progress,
    backup_lock,
    clean_incomplete,
    commit_manifest,
    part_sink,
    unique_id,
)
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.redis.files import (
    FileRecord,
    check_files,
    host_dir,
    open_server,
    require_sound,
    scratch_dir,
)
from drkit.infra.parts import split_into_parts

KEEP_LAST = 7  # prune's keep_last for Redis when backup.retention.keep_last is not set
SAVE_TIMEOUT = 3600.0
PART_SIZE = 16 * 1024 * 1024
PARALLEL = 2
FORMAT = (
    "the server's RDB and multi-part AOF files, each cut in parts compressed with zstd "
    "(and encrypted with age): cat NAME.*.zst | zstd -d > NAME"
)


def backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """BGSAVE (and AOF cut) under a write pause, copy, check, store, commit."""
    with backup_lock(ws, service.name):
        removed = clean_incomplete(ws, service.name)
        started = ws.clock.now()
        backup_id = unique_id(ws, service.name, BackupKind.RDB, started)
        staging = scratch_dir(ws, service, f"backup-{backup_id}")
        try:
            with open_server(service) as server:
                snap = take_snapshot(
                    server, staging, host_dir=host_dir(service), timeout=SAVE_TIMEOUT, clock=ws.clock
                )
            verdicts = check_files(staging, snap.files)
            require_sound(verdicts, f"backup of {service.name} refused")
            stored, records = _store(ws, service, backup_id, staging, snap.files, progress)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        manifest = Manifest(
            backup_id=backup_id,
            stack=ws.stack.name,
            service=service.name,
            kind=BackupKind.RDB,
            started_at=started,
            finished_at=ws.clock.now(),
            files=tuple(stored),
            tool_versions={"redis": snap.version},
            compression=f"zstd-{ws.codec.level}",
            encrypted=ws.codec.encrypted,
            details=_details(snap, records, verdicts),
        )
        commit_manifest(ws, manifest)
        return BackupResult(manifest, removed)


def _details(
    snap: Snapshot,
    records: list[FileRecord],
    verdicts: list[Verdict],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "redis_version": snap.version,
        "aof": snap.layout.appendonly,
        "keys": snap.keyspace.total,
        "keys_per_db": {str(db): n for db, n in sorted(snap.keyspace.keys.items())},
        "expires_per_db": {str(db): n for db, n in sorted(snap.keyspace.expires.items())},
        "sample": [d.to_dict() for d in snap.sample],
        "config": snap.layout.to_dict(),
        "files": [r.to_dict() for r in records],
        "checks": {v.file: v.detail for v in verdicts},
    }


def _store(
    ws: Workspace,
    service: Service,
    backup_id: str,
    staging: Path,
    files: tuple[StagedFile, ...],
    progress: Progress | None,
) -> tuple[list[StoredFile], list[FileRecord]]:
    directory = backup_dir(ws.stack.name, service.name, backup_id)
    stored: list[StoredFile] = []
    records: list[FileRecord] = []
    done = 0
    for staged in files:
        with open(staging / staged.path, "rb") as fh:
            parts, raw = split_into_parts(
                fh.read,
                part_sink(ws, directory, staged.path),
                part_size=PART_SIZE,
                parallel=PARALLEL,
                progress=_offset(progress, done),
            )
        if raw != staged.size:
            raise IntegrityError(f"{staged.path} changed in the staging directory while it was stored")
        done += raw
        stored.extend(parts)
        records.append(
            FileRecord(staged.path, staged.role, staged.size, staged.sha256, tuple(p.name for p in parts))
        )
    return stored, records


def _offset(progress: Progress | None, base: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda n: progress(base + n)
