"""MeiliSearch backups: dumps (portable to the same or a newer version) and snapshots (same
version only), taken through the API and restored by restarting the server with
`--import-dump` / `--import-snapshot` (Meilisearch imports only at launch, into an empty
database).

Backup: `POST /dumps` (or `/snapshots`), wait for the task with a deadline, read the file
the server wrote into its dump (snapshot) directory on this host, store it in parts
(zstd, age) with its SHA-256 and every index's document count; manifest last. The last
KEEP_LAST of each (dumps, snapshots) are kept, plus any a stack-wide set refers to.

Restore (local runtime): verify and stage the file, stop the server through its runtime,
move its database aside (never deleted), start it once with the import flag, wait for
health, compare each index's document count with the manifest. If the import fails, the
previous database is moved back and the server restarted as it was.

Where the server's files are: `--db-path`, `--dump-dir` and `--snapshot-dir` in
`runtime.command`, else Meilisearch's defaults (`data.ms`, `dumps/`, `snapshots/`)
relative to `runtime.data_dir` (its working directory). The master key is the service's
`password` (env:MEILI_MASTER_KEY).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drkit.adapters.meilisearch import MeilisearchClient
from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import BackupKind, Manifest, StoredFile, new_backup_id
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import IntegrityError, NotFoundError, OperationError, UsageError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.commit import (
    BackupResult,
    Progress,
    clean_incomplete,
    commit_manifest,
    part_sink,
)
from drkit.engines.core.layout import backup_dir, backups_prefix, lock_name, manifest_key
from drkit.engines.core.registry import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace
from drkit.infra import locks
from drkit.infra.parts import split_into_parts
from drkit.runtimes.local_process import LocalProcess

KEEP_LAST = 5
TASK_TIMEOUT = 3600.0  # a dump of a large instance takes a while; a stuck task must not hang forever
PART_SIZE = 16 * 1024 * 1024
IMPORT_TIMEOUT = 1800.0  # the server listens only once the whole dump is indexed
DUMP, SNAPSHOT = "dump", "snapshot"


@dataclass(frozen=True)
class ServerPaths:
    db_path: Path
    dump_dir: Path
    snapshot_dir: Path

    def artifact(self, kind: str, dump_uid: str | None = None) -> Path:
        if kind == DUMP:
            return self.dump_dir / f"{dump_uid}.dump"
        return self.snapshot_dir / f"{self.db_path.name}.snapshot"


def server_paths(service: Service) -> ServerPaths:
    """The server's database, dump and snapshot directories as seen from this host."""
    command = list(service.runtime.command)
    base = Path(service.runtime.data_dir) if service.runtime.data_dir else None

    def flag(name: str, default: str) -> Path:
        value = next((command[i + 1] for i, a in enumerate(command[:-1]) if a == name), None)
        value = value or next((a.split("=", 1)[1] for a in command if a.startswith(name + "=")), None)
        path = Path(value or default)
        if path.is_absolute():
            return path
        if base is None:
            raise UsageError(
                f"services.{service.name}: drkit reads dumps from the server's disk and cannot tell "
                f"where {name} is: set runtime.data_dir to the directory Meilisearch runs in "
                "(for docker compose, the host path of its data volume)"
            )
        return base / path

    return ServerPaths(
        flag("--db-path", "data.ms"), flag("--dump-dir", "dumps"), flag("--snapshot-dir", "snapshots")
    )


def client_for(service: Service) -> MeilisearchClient:
    if not service.url:
        raise UsageError(f"service {service.name} (meilisearch) needs a url, like http://127.0.0.1:7700")
    return MeilisearchClient(service.url, api_key=service.password)


def backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """A dump: portable to the same or a newer Meilisearch (`--import-dump`)."""
    return _backup(ws, service, DUMP, progress)


def backup_snapshot(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """A snapshot: faster to restore, same Meilisearch version only (`--import-snapshot`)."""
    return _backup(ws, service, SNAPSHOT, progress)


def _backup(ws: Workspace, service: Service, kind: str, progress: Progress | None) -> BackupResult:
    paths = server_paths(service)
    with locks.exclusive(ws.lock_dir, lock_name(service.name, "backup")), client_for(service) as meili:
        removed = clean_incomplete(ws, service.name)
        started = ws.clock.now()
        before = meili.document_counts()
        task_uid = meili.create_dump() if kind == DUMP else meili.create_snapshot()
        task = meili.wait_succeeded(task_uid, timeout=TASK_TIMEOUT, clock=ws.clock)
        source = paths.artifact(kind, task.details.get("dumpUid"))
        after = meili.document_counts()
        backup_id = _unique_id(ws, service.name, kind, started)
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
        keep_last(ws, service.name, kind, service.keep_last or KEEP_LAST)
        return BackupResult(manifest, removed)


def _unique_id(ws: Workspace, service: str, kind: str, now: datetime) -> str:
    base = new_backup_id(BackupKind.DUMP, now).removesuffix("dump") + kind
    taken = {key.split("/")[3] for key in ws.repo.list(backups_prefix(ws.stack.name, service))}
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


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


def keep_last(ws: Workspace, service: str, kind: str, keep: int) -> tuple[str, ...]:
    """Delete all but the newest `keep` backups of this kind (dump or snapshot); never one a
    stack-wide set refers to. The manifest goes first, so a half-deleted backup is only an
    incomplete one, which the next backup cleans up."""
    from drkit.engines.stack.sets import list_sets

    listing = list_backups(ws.repo, ws.stack.name, service).complete
    mine = sorted(
        (m for m in listing if m.details.get("artifact") == kind), key=lambda m: (m.finished_at, m.backup_id)
    )
    protected = {s.backups.get(service) for s in list_sets(ws)}
    doomed = [m.backup_id for m in mine[: max(0, len(mine) - keep)] if m.backup_id not in protected]
    for backup_id in doomed:
        ws.repo.delete(manifest_key(ws.stack.name, service, backup_id))
        for key in ws.repo.list(backup_dir(ws.stack.name, service, backup_id) + "/"):
            ws.repo.delete(key)
    return tuple(doomed)


def restore(ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult:
    """Restart the server with --import-dump (or --import-snapshot) of the chosen backup."""
    if options.to or options.prefix:
        raise UsageError(
            "MeiliSearch restores into its own server (a restart with --import-dump); no --to/--prefix"
        )
    if service.runtime.type != "local":
        raise UsageError(
            f"restoring {service.name} restarts it with --import-dump, which drkit does for a local runtime; "
            f"for {service.runtime.type}, follow docs/hasura-and-search.md (restore by hand)"
        )
    began = ws.clock.monotonic()
    manifest = choose_backup(ws, service, options)
    paths = server_paths(service)
    kind = str(manifest.details.get("artifact", DUMP))
    with locks.exclusive(ws.lock_dir, lock_name(service.name, "restore")):
        staged = stage(ws, manifest, paths.db_path.parent / "drkit-import", service.runtime.os_user)
        moved = import_file(ws, service, paths.db_path, f"--import-{kind}", staged)
        staged.unlink(missing_ok=True)
        checks = compare_counts(service, manifest)
    seconds = ws.clock.monotonic() - began
    detail = f"{kind} of {manifest.finished_at.isoformat()} imported in {seconds:.1f}s"
    if moved is not None:
        detail += f"; the previous database is kept at {moved}"
    return RestoreResult(service.name, manifest.backup_id, seconds, detail, checks)


def choose_backup(ws: Workspace, service: Service, options: RestoreOptions) -> Manifest:
    found = [
        m for m in list_backups(ws.repo, ws.stack.name, service.name).complete if m.kind is BackupKind.DUMP
    ]
    if options.backup_id is not None:
        for manifest in found:
            if manifest.backup_id == options.backup_id:
                return manifest
        raise NotFoundError(
            f"no dump or snapshot {options.backup_id} of {service.name} in {ws.repo.location}"
        )
    if options.target_time is not None:
        found = [m for m in found if m.finished_at <= options.target_time]
    if not found:
        when = f" at or before {options.target_time.isoformat()}" if options.target_time else ""
        raise NotFoundError(f"no dump or snapshot of {service.name}{when} in {ws.repo.location}")
    return max(found, key=lambda m: (m.finished_at, m.backup_id))


def stage(ws: Workspace, manifest: Manifest, directory: Path, os_user: str | None) -> Path:
    """Fetch, check and decode the backup's parts into one file the server can read."""
    from drkit.infra.atomic import fsync_dir
    from drkit.infra.ownership import chown_tree

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationError(
            f"cannot stage the import in {directory} ({exc.strerror}): drkit writes it beside the "
            "server's database, where the server can read it"
        ) from exc
    name = str(manifest.details.get("file", "backup"))
    target = directory / f"{manifest.backup_id}-{name}"
    tmp = target.with_name(f".{target.name}.tmp")
    digest = hashlib.sha256()
    prefix = backup_dir(manifest.stack, manifest.service, manifest.backup_id)
    with open(tmp, "wb") as out:
        for stored in manifest.files:
            data = ws.repo.get(f"{prefix}/{stored.name}")
            if len(data) != stored.size or sha256(data) != stored.sha256:
                tmp.unlink(missing_ok=True)
                raise IntegrityError(f"{manifest.backup_id}/{stored.name} does not match its manifest")
            raw = ws.codec.decode(data, name=stored.name, encrypted=manifest.encrypted)
            digest.update(raw)
            out.write(raw)
        out.flush()
        os.fsync(out.fileno())
    if manifest.details.get("sha256") not in (None, digest.hexdigest()):
        tmp.unlink(missing_ok=True)
        raise IntegrityError(f"{manifest.backup_id}: the reassembled {name} does not match its SHA-256")
    os.replace(tmp, target)
    fsync_dir(directory)
    chown_tree(directory, os_user)
    return target


def compare_counts(service: Service, manifest: Manifest) -> tuple[CheckResult, ...]:
    """Each index's document count against the backup's; approximate counts only warn."""
    expected = {str(k): int(v) for k, v in dict(manifest.details.get("documents", {})).items()}
    exact = bool(manifest.details.get("counts_exact", True))
    with client_for(service) as meili:
        actual = meili.document_counts()
    results = []
    for uid, want in sorted(expected.items()):
        have = actual.get(uid)
        ok = have == want
        status = Status.OK if ok else (Status.FAILED if exact else Status.WARNING)
        detail = f"{have if have is not None else 'no index'} documents, {want} in the backup"
        results.append(
            CheckResult(f"index {uid}", status, detail + ("" if exact or ok else " (approximate)"))
        )
    return tuple(results)


def import_file(ws: Workspace, service: Service, db_path: Path, flag: str, staged: Path) -> Path | None:
    """Stop, move the database aside, start once with `flag staged`, wait until healthy.
    Meilisearch imports at launch and listens only once done; it refuses a non-empty
    database. On failure, put the previous database back and start the server as it was."""
    from dataclasses import replace

    from drkit.runtimes.factory import runtime_for

    runtime = runtime_for(service, ws.stack.state_dir)
    runtime.stop()
    try:
        moved = _move_aside(db_path, f"drkit-before-restore-{ws.clock.now():%Y%m%dT%H%M%SZ}")
    except OSError as exc:
        runtime.start()
        raise OperationError(
            f"cannot move {db_path} aside ({exc.strerror}); {service.name} restarted unchanged"
        ) from exc
    spec = replace(service.runtime, command=(*service.runtime.command, flag, str(staged)))
    importer = LocalProcess(spec, name=service.name, state_dir=ws.stack.state_dir, clock=ws.clock)
    importer.start()
    try:
        _wait_healthy(ws, service, importer)
    except OperationError as exc:
        importer.stop()
        raise OperationError(
            f"{service.name} did not come back with {flag} {staged.name}: {exc.message}; "
            + _roll_back(ws, service, db_path, moved)
        ) from exc
    return moved


def _roll_back(ws: Workspace, service: Service, db_path: Path, moved: Path | None) -> str:
    """Put the previous database back and start the server as configured; say what happened."""
    failed = _move_aside(db_path, f"drkit-failed-import-{ws.clock.now():%Y%m%dT%H%M%SZ}")
    if moved is not None:
        os.rename(moved, db_path)
    kept = f" (the failed import is kept at {failed})" if failed else ""
    server = LocalProcess(service.runtime, name=service.name, state_dir=ws.stack.state_dir, clock=ws.clock)
    server.start()
    try:
        _wait_healthy(ws, service, server)
    except OperationError as exc:
        return (
            f"the previous database is back in place{kept}, but the server did not come back: {exc.message}"
        )
    return f"the previous database is back in place and the server restarted{kept}"


def _move_aside(path: Path, suffix: str) -> Path | None:
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.{suffix}")
    os.rename(path, target)
    return target


def _wait_healthy(ws: Workspace, service: Service, process: LocalProcess) -> None:
    from drkit.adapters.probes import default_probe, probe_timeout
    from drkit.infra.wait import wait_for

    def healthy() -> bool:
        if not process.is_running():
            raise _Exited(f"it exited: {_last_line(process.log_file)}")
        with client_for(service) as meili:
            return meili.health() == "available"

    timeout = max(probe_timeout(default_probe(service)), IMPORT_TIMEOUT)
    wait_for(
        healthy,
        timeout=timeout,
        what=f"{service.name} to import and answer",
        clock=ws.clock,
        fatal=(_Exited,),
    )


class _Exited(OperationError):
    """The server exited while importing."""


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"
