"""MeiliSearch backups: dumps (portable to the same or a newer version) and snapshots (same
version only), taken through the API.

`POST /dumps` (or `/snapshots`), wait for the task with a deadline, read the file the
server wrote into its dump (snapshot) directory on this host, store it in parts (zstd, age)
with its SHA-256 and every index's document count; manifest last. A backup removes no
other backup: `drkit prune` does (keep_last defaults to KEEP_LAST per series: dumps,
snapshots; engines/ops/prune.py).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from drkit.domain.backup import BackupKind, Manifest, StoredFile
from drkit.domain.errors import OperationError
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
from drkit.engines.search.server import DUMP, SNAPSHOT, client_for, server_paths
from drkit.infra.parts import split_into_parts

KEEP_LAST = 5  # prune's keep_last for MeiliSearch when backup.retention.keep_last is not set
TASK_TIMEOUT = 3600.0  # a dump of a large instance takes a while; a stuck task must not hang forever
PART_SIZE = 16 * 1024 * 1024


def backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """A dump: portable to the same or a newer Meilisearch (`--import-dump`)."""
    return _backup(ws, service, DUMP, progress)


def backup_snapshot(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """A snapshot: faster to restore, same Meilisearch version only (`--import-snapshot`)."""
    return _backup(ws, service, SNAPSHOT, progress)


def _backup(ws: Workspace, service: Service, kind: str, progress: Progress | None) -> BackupResult:
    paths = server_paths(service)
    with backup_lock(ws, service.name), client_for(service) as meili:
        removed = clean_incomplete(ws, service.name)
        started = ws.clock.now()
        before = meili.document_counts()
        task_uid = meili.create_dump() if kind == DUMP else meili.create_snapshot()
        task = meili.wait_succeeded(task_uid, timeout=TASK_TIMEOUT, clock=ws.clock)
        source = paths.artifact(kind, task.details.get("dumpUid"))
        after = meili.document_counts()
        backup_id = unique_id(ws, service.name, BackupKind.DUMP, started, label=kind)
        files, digest, raw_bytes = _store(
            ws, source, backup_dir(ws.stack.name, service.name, backup_id), progress
        )
        manifest = Manifest(
            backup_id=backup_id,
            stack=ws.stack.name,
            service=service.name,
            kind=BackupKind.DUMP,
            started_at=started,
            finished_at=ws.clock.now(),
            files=files,
            tool_versions={"meilisearch": meili.version()},
            compression=f"zstd-{ws.codec.level}",
            encrypted=ws.codec.encrypted,
            details={
                "artifact": kind,
                "file": source.name,
                "task_uid": task_uid,
                "dump_uid": task.details.get("dumpUid"),
                "sha256": digest,
                "raw_bytes": raw_bytes,
                "documents": after,
                "counts_exact": before == after,  # nothing was written while the task ran
                "format": f"cat {source.name}.*.zst | zstd -d > {source.name}; "
                f"meilisearch --import-{kind} {source.name} (into an empty --db-path)",
            },
        )
        commit_manifest(ws, manifest)
        if kind == DUMP:  # it is in the repository now; dumps would otherwise fill the server's disk
            with contextlib.suppress(OSError):  # not ours to delete (another OS user): it stays
                source.unlink(missing_ok=True)
        return BackupResult(manifest, removed)


def _store(
    ws: Workspace, source: Path, directory: str, progress: Progress | None
) -> tuple[tuple[StoredFile, ...], str, int]:
    """The server's file, in parts, hashed as read."""
    digest = hashlib.sha256()
    try:
        fh = open(source, "rb")  # noqa: SIM115 - closed below; open errors need their own message
    except OSError as exc:
        raise OperationError(
            f"cannot read {source} ({exc.strerror}): the server wrote it on its own disk; "
            "runtime.data_dir (or --dump-dir/--snapshot-dir in runtime.command) must point there"
        ) from exc
    with fh:
        parts, total = split_into_parts(
            fh.read,
            part_sink(ws, directory, source.name),
            part_size=PART_SIZE,
            parallel=2,
            observe=digest.update,
            progress=progress,
        )
    return tuple(parts), digest.hexdigest(), total
