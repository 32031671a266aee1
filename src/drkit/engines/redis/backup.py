"""Redis backups and restores (the `redis` kind; see kinds.py).

A backup is the server's own files: the RDB from a BGSAVE and, when AOF is on, every base
and incr file of its Redis 7 multi-part AOF with the AOF manifest, copied at one moment
(adapters/redis/snapshot.py). Each copy passes redis-check-rdb / redis-check-aof before
anything is stored, then goes to the repository in zstd (and age) parts; the manifest is
written last and records the key counts, a sample of key digests, the Redis version and
whether AOF was on. The newest KEEP_LAST backups of the service are kept (and any that a
stack-wide set refers to); older ones are removed after the new one is committed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drkit.adapters.redis.aof import manifest_name
from drkit.adapters.redis.checks import Verdict, check_aof, check_rdb
from drkit.adapters.redis.client import RedisServer
from drkit.adapters.redis.snapshot import Snapshot, StagedFile, take_snapshot
from drkit.domain.backup import BackupKind, Manifest, StoredFile
from drkit.domain.errors import IntegrityError, RepositoryError, UsageError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.commit import (
    BackupResult,
    Progress,
    clean_incomplete,
    commit_manifest,
    part_sink,
    unique_id,
)
from drkit.engines.core.layout import backup_dir, lock_name, manifest_key
from drkit.engines.core.registry import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace
from drkit.infra import locks
from drkit.infra.parts import split_into_parts

KEEP_LAST = 7
SAVE_TIMEOUT = 3600.0
PART_SIZE = 16 * 1024 * 1024
PARALLEL = 2
FORMAT = (
    "the server's RDB and multi-part AOF files, each cut in parts compressed with zstd "
    "(and encrypted with age): cat NAME.*.zst | zstd -d > NAME"
)


@dataclass(frozen=True)
class FileRecord:
    """One of the server's files in a backup: where it goes, its raw size and hash, its parts."""

    path: str
    role: str
    size: int
    sha256: str
    parts: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "role": self.role,
            "size": self.size,
            "sha256": self.sha256,
            "parts": list(self.parts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRecord:
        return cls(
            str(data["path"]), str(data["role"]), int(data["size"]), str(data["sha256"]), tuple(data["parts"])
        )


def open_server(service: Service) -> RedisServer:
    if not service.url:
        raise UsageError(f"service {service.name} has no url (like redis://127.0.0.1:6379/0)")
    return RedisServer(service.url, password=service.password)


def host_dir(service: Service) -> Path | None:
    """Where this host sees the server's files: runtime.data_dir when set (a container's
    volume), else the server's own CONFIG GET dir."""
    return Path(service.runtime.data_dir) if service.runtime.data_dir else None


def scratch_dir(ws: Workspace, service: Service, name: str) -> Path:
    path = ws.state_dir / "redis" / f"{service.name}-{name}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def check_files(root: Path, records: Iterable[FileRecord | StagedFile]) -> list[Verdict]:
    """redis-check-rdb on the RDB, redis-check-aof on the AOF (through its manifest, which
    checks every file it lists); verdicts name files relative to `root`."""
    verdicts: list[Verdict] = []
    for record in records:
        if record.role == "rdb":
            verdicts.append(check_rdb(root / record.path))
        elif record.role == "aof-manifest":
            folder = record.path.rpartition("/")[0]
            found = check_aof(root / record.path)
            verdicts.append(
                Verdict(found.ok, f"{folder}/{found.file}" if folder else found.file, found.detail)
            )
    return verdicts


def require_sound(verdicts: list[Verdict], context: str) -> None:
    for verdict in verdicts:
        if not verdict.ok:
            raise IntegrityError(f"{context}: {verdict.file} is damaged: {verdict.detail}")


def backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """BGSAVE (and AOF cut) under a write pause, copy, check, store, commit, prune."""
    with locks.exclusive(ws.lock_dir, lock_name(service.name, "backup")):
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
        keep = service.keep_last or KEEP_LAST
        superseded = _superseded(ws, service.name, keep - 1)
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
            details=_details(snap, records, verdicts, superseded, keep),
        )
        commit_manifest(ws, manifest)
        for old in superseded:
            delete_backup(ws, service.name, old)
        return BackupResult(manifest, removed)


def _details(
    snap: Snapshot,
    records: list[FileRecord],
    verdicts: list[Verdict],
    superseded: tuple[str, ...],
    keep: int = KEEP_LAST,
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
        "retention": {"keep_last": keep, "removed": list(superseded)},
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


def _superseded(ws: Workspace, service: str, keep: int) -> tuple[str, ...]:
    """Complete RDB backups beyond the newest `keep`, except those a stack-wide set uses."""
    from drkit.engines.stack.sets import list_sets

    newest_first = sorted(
        (m for m in list_backups(ws.repo, ws.stack.name, service).complete if m.kind is BackupKind.RDB),
        key=lambda m: (m.finished_at, m.backup_id),
        reverse=True,
    )
    try:
        in_sets = {s.backups.get(service) for s in list_sets(ws)}
    except (ValueError, KeyError, RepositoryError):
        return ()  # the sets cannot be read: remove nothing rather than break one
    return tuple(m.backup_id for m in newest_first[keep:] if m.backup_id not in in_sets)


def delete_backup(ws: Workspace, service: str, backup_id: str) -> None:
    """The manifest first: from then on the backup does not exist, and whatever a crash
    leaves behind is an incomplete backup that the next run removes."""
    key = manifest_key(ws.stack.name, service, backup_id)
    ws.repo.delete(key)
    for other in ws.repo.list(backup_dir(ws.stack.name, service, backup_id) + "/"):
        ws.repo.delete(other)


def records_of(manifest: Manifest) -> list[FileRecord]:
    return [FileRecord.from_dict(r) for r in manifest.details.get("files", [])]


def aof_manifest_path(appenddirname: str, appendfilename: str) -> str:
    return f"{appenddirname}/{manifest_name(appendfilename)}"


def restore(ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult:
    """Check the files, stop the server, move its files aside, put the backup's in place
    (AOF over RDB, as Redis reads them), start it and compare; see redis_restore.py."""
    from drkit.engines.redis.restore import restore_redis

    return restore_redis(ws, service, options)
