"""Restore MeiliSearch from a dump or snapshot: Meilisearch imports only at launch, into an
empty database (`--import-dump` / `--import-snapshot`).

Verify and stage the file, stop the server through its runtime, move its database aside
(never deleted), start it once with the import flag, wait for health, compare each index's
document count with the manifest. If the import fails, the previous database is moved
back and the server restarted as it was. A local runtime only: drkit must start the
importing process itself.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from drkit.adapters.meilisearch import MeilisearchError
from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError, IntegrityError, OperationError, RolledBackError, UsageError
from drkit.domain.names import require_plain_name
from drkit.domain.stack import Service
from drkit.engines.core.layout import backup_dir, lock_name
from drkit.engines.core.restore_choice import choose_for_restore
from drkit.engines.core.types import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace
from drkit.engines.search.server import DUMP, SNAPSHOT, client_for, server_paths
from drkit.infra import locks
from drkit.infra.aside import Aside, move_aside, roll_back, settle, undo_unfinished
from drkit.infra.interrupt import deferred, interruptible
from drkit.runtimes.local_process import LocalProcess

IMPORT_TIMEOUT = 1800.0  # the server listens only once the whole dump is indexed


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
    if kind == SNAPSHOT:
        same_version_only(service, manifest)
    with locks.exclusive(ws.lock_dir, lock_name(service.name), "restore"), interruptible():
        staged = stage(ws, manifest, paths.db_path.parent / "drkit-import", service.runtime.os_user)
        moved = import_file(ws, service, paths.db_path, f"--import-{kind}", staged)
        staged.unlink(missing_ok=True)
        checks = compare_counts(service, manifest)
    seconds = ws.clock.monotonic() - began
    detail = f"{kind} of {manifest.finished_at.isoformat()} imported in {seconds:.1f}s"
    if moved is not None:
        detail += f"; the previous database is kept at {moved}"
    return RestoreResult(service.name, manifest.backup_id, seconds, detail, checks)


def same_version_only(service: Service, manifest: Manifest) -> None:
    """Meilisearch loads a snapshot only into the version that wrote it, and finds out only once
    the server is stopped and restarting: drkit refuses first, before anything is touched."""
    made_by = manifest.tool_versions.get("meilisearch")
    try:
        with client_for(service) as meili:
            running = meili.version()
    except MeilisearchError as exc:
        raise OperationError(
            f"{manifest.backup_id} is a snapshot, which loads only into Meilisearch {made_by}; drkit "
            f"cannot ask {service.name} its version ({exc.message}): start it, or restore a dump"
        ) from exc
    if made_by and running != made_by:
        raise UsageError(
            f"{manifest.backup_id} is a snapshot of Meilisearch {made_by}, and {service.name} runs "
            f"{running}: snapshots load only into the same version; restore a dump instead"
        )


def choose_backup(ws: Workspace, service: Service, options: RestoreOptions) -> Manifest:
    return choose_for_restore(ws, service, options).manifest  # the one rule (core/choose.py)


def stage(ws: Workspace, manifest: Manifest, directory: Path, os_user: str | None) -> Path:
    """Fetch, check and decode the backup's parts into one file the server can read."""
    from drkit.infra.atomic import fsync_dir, temp_beside
    from drkit.infra.ownership import chown_tree

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationError(
            f"cannot stage the import in {directory} ({exc.strerror}): drkit writes it beside the "
            "server's database, where the server can read it"
        ) from exc
    name = require_plain_name(str(manifest.details.get("file", "backup")), f"{manifest.backup_id}: file")
    target = directory / f"{manifest.backup_id}-{name}"
    fd, tmp = temp_beside(target)
    digest = hashlib.sha256()
    prefix = backup_dir(manifest.stack, manifest.service, manifest.backup_id)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o644)
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
    """Stop, move the database aside (infra/aside.py), start once with `flag staged`, wait
    until healthy. Meilisearch imports at launch and listens only once done; it refuses a
    non-empty database. On failure (or a signal), put the previous database back and start
    the server as it was."""
    from dataclasses import replace

    from drkit.runtimes.factory import runtime_for

    runtime = runtime_for(service, ws.stack.state_dir)
    ledger = ws.state_dir / "replacing" / f"{service.name}.json"
    undo_unfinished(ledger, now=ws.clock.now(), stop=runtime.stop, live=db_path)
    runtime.stop()
    try:
        moved = move_aside(db_path, "before-restore", now=ws.clock.now(), ledger=ledger)
    except BaseException as exc:
        with deferred():
            runtime.start()
        raise RolledBackError(f"{_why(exc)}; {service.name} restarted unchanged") from exc
    spec = replace(service.runtime, command=(*service.runtime.command, flag, str(staged)))
    importer = LocalProcess(spec, name=service.name, state_dir=ws.stack.state_dir, clock=ws.clock)
    try:
        importer.start()
        _wait_healthy(ws, service, importer)
    except BaseException as exc:
        with deferred():
            importer.stop()
            said, ok = _roll_back(ws, service, moved)
        error = RolledBackError if ok else OperationError
        raise error(
            f"{service.name} did not come back with {flag} {staged.name}: {_why(exc)}; {said}"
        ) from exc
    settle(moved)
    return moved.path


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, DrkitError):
        return exc.message
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    return f"{type(exc).__name__}: {exc}"


def _roll_back(ws: Workspace, service: Service, moved: Aside) -> tuple[str, bool]:
    """Put the previous database back and start the server as configured; say what happened."""
    try:
        roll_back(moved, now=ws.clock.now())
    except OperationError as exc:
        return exc.message, False
    server = LocalProcess(service.runtime, name=service.name, state_dir=ws.stack.state_dir, clock=ws.clock)
    server.start()
    try:
        _wait_healthy(ws, service, server)
    except OperationError as exc:
        return (
            f"the previous database is back in place, but the server did not come back: {exc.message}",
            False,
        )
    return "the previous database is back in place and the server restarted", True


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
        retry_on=(MeilisearchError,),
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
