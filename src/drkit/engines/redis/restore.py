"""Restore Redis from a backup: every file is checked before the server is touched.

1. Fetch each part, check its SHA-256 against the manifest, decode it into a staging
   directory, and check each whole file's size and SHA-256; then redis-check-rdb and
   redis-check-aof on the staged files. Any failure refuses the restore, naming the file.
2. Stop the server through its runtime (it must stop answering), move its RDB and AOF
   directory aside into `drkit-before-restore-<time>/` in its data directory (never
   deleted; infra/aside.py, with a ledger so a killed restore is undone by the next one),
   and put the backup's files in place, owned like the data directory.
   Where they go is the live server's layout, or with the server down its configuration's
   (engines/redis/layout.py), never the layout the backup recorded: each name is checked
   as a plain name inside the data directory.
3. AOF over RDB (FIELD-NOTES): with `appendonly yes` Redis loads only the AOF, so an RDB
   alone would give an empty server that then overwrites the good RDB. So:
   - the backup has an AOF and the server runs with AOF: its AOF directory goes in place;
   - the backup has only an RDB and the server runs with AOF: the RDB also becomes the AOF's
     base file (`<appendfilename>.1.base.rdb` plus a one-line AOF manifest), which Redis 7
     loads like any base, then opens a fresh incr file. This works for every runtime,
     where starting once with `appendonly no` would need the runtime's command line;
   - the server runs without AOF: the RDB goes in place (a backup's RDB and AOF hold the
     same data: both were cut while writes were paused).
4. Start through the runtime, wait for PING and for loading to end, then compare the key
   counts and the sampled keys with the manifest. If anything fails after the stop (or the
   restore is interrupted), the previous files are put back and it is started again.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from drkit.adapters.redis.aof import manifest_name, rdb_as_base
from drkit.adapters.redis.client import Layout
from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError, IntegrityError, OperationError, RolledBackError, UsageError
from drkit.domain.names import is_plain_name
from drkit.domain.stack import Service
from drkit.engines.core.layout import backup_dir, lock_name
from drkit.engines.core.restore_choice import choose_for_restore
from drkit.engines.core.types import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace
from drkit.engines.redis.compare import compare_server
from drkit.engines.redis.files import (
    FileRecord,
    check_files,
    open_server,
    records_of,
    require_sound,
    scratch_dir,
)
from drkit.engines.redis.layout import Target, find_target
from drkit.infra import locks
from drkit.infra.aside import Aside, move_aside, roll_back, settle, undo_unfinished
from drkit.infra.atomic import fsync_dir, temp_beside
from drkit.infra.interrupt import deferred, interruptible
from drkit.infra.ownership import chown_tree
from drkit.infra.wait import wait_for
from drkit.runtimes.factory import runtime_for
from drkit.runtimes.port import Runtime

LOAD_TIMEOUT = 1800.0
STOP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Placement:
    """One file to put in the data directory: from the staging directory, or given bytes."""

    dest: str  # relative to the data directory
    src: str | None = None  # relative to the staging directory
    content: bytes | None = None


def restore(ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult:
    with locks.exclusive(ws.lock_dir, lock_name(service.name), "restore"), interruptible():
        began = ws.clock.monotonic()
        m = choose_backup(ws, service, options)
        if options.to:
            _check_destination(Path(options.to))
        records = records_of(m)
        staging = scratch_dir(ws, service, f"restore-{m.backup_id}")
        refused = f"restore of {m.backup_id} refused ({service.name} was not touched)"
        try:
            try:
                fetch(ws, m, records, staging)
            except IntegrityError as exc:
                raise IntegrityError(f"{refused}: {exc.message}") from exc
            require_sound(check_files(staging, records), refused)
            files_ok = CheckResult(
                "files", Status.OK, f"{len(records)} files match the manifest and pass redis-check-rdb/aof"
            )
            if options.to:
                detail = _to_directory(staging, records, Path(options.to), m)
                return RestoreResult(
                    service.name, m.backup_id, ws.clock.monotonic() - began, detail, (files_ok,)
                )
            target = find_target(service)  # the server's or its configuration's, never the backup's
            refuse_older_server(m, target)
            placements, mode = plan_placements(records, target.layout)
            aside = _swap_and_start(ws, service, staging, placements, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        checks = [files_ok, *_compare(ws, service, m)]
        detail = f"{mode} into {target.data_dir} (layout of {target.source}); previous files kept in {aside}"
        return RestoreResult(service.name, m.backup_id, ws.clock.monotonic() - began, detail, tuple(checks))


def choose_backup(ws: Workspace, service: Service, options: RestoreOptions) -> Manifest:
    return choose_for_restore(ws, service, options).manifest  # the one rule (core/choose.py)


def fetch(ws: Workspace, m: Manifest, records: list[FileRecord], staging: Path) -> None:
    """Every part checked against the manifest's SHA-256, decoded, and each whole file
    against its own size and SHA-256."""
    if not records:
        raise IntegrityError(f"backup {m.backup_id} lists no files")
    directory = backup_dir(m.stack, m.service, m.backup_id)
    for record in records:
        if not all(is_plain_name(p) for p in record.path.split("/")):
            raise IntegrityError(f"backup {m.backup_id}: unsafe file name {record.path!r}")
        dest = staging / record.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as out:
            for part in record.parts:
                out.write(_fetch_part(ws, m, directory, part))
        if dest.stat().st_size != record.size or _file_sha256(dest) != record.sha256:
            raise IntegrityError(
                f"backup {m.backup_id}: {record.path} does not match its SHA-256 once decoded"
            )


def _fetch_part(ws: Workspace, m: Manifest, directory: str, part: str) -> bytes:
    try:
        stored = m.file(part)
    except KeyError as exc:
        raise IntegrityError(f"backup {m.backup_id}: {part} is not among the manifest's files") from exc
    try:
        data = ws.repo.get(f"{directory}/{part}")
    except FileNotFoundError as exc:
        raise IntegrityError(f"backup {m.backup_id}: {part} is missing from {ws.repo.location}") from exc
    if len(data) != stored.size or sha256(data) != stored.sha256:
        raise IntegrityError(f"backup {m.backup_id}: {part} does not match the manifest's SHA-256")
    return ws.codec.decode(data, name=part, encrypted=m.encrypted)


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def refuse_older_server(m: Manifest, target: Target) -> None:
    backup_version = str(m.details.get("redis_version", ""))
    if target.version and _major_minor(backup_version) > _major_minor(target.version):
        raise UsageError(
            f"backup {m.backup_id} comes from Redis {backup_version}; the server runs "
            f"{target.version}, and an RDB does not load into an older Redis"
        )


def _major_minor(version: str) -> tuple[int, int]:
    parts = [*version.split("."), "0", "0"][:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return (0, 0)


def plan_placements(records: list[FileRecord], layout: Layout) -> tuple[list[Placement], str]:
    """Which files go where, by the AOF-over-RDB rule (see the module docstring)."""
    rdb = next((r for r in records if r.role == "rdb"), None)
    if rdb is None:
        raise IntegrityError("the backup holds no RDB file")
    out = [Placement(layout.dbfilename, src=rdb.path)]
    if not layout.appendonly:
        return out, "RDB restored (the server runs without AOF)"
    aof = [r for r in records if r.role in ("aof-base", "aof-incr")]
    listing = next((r for r in records if r.role == "aof-manifest"), None)
    if listing is not None and aof:
        out += [Placement(f"{layout.appenddirname}/{r.path.rpartition('/')[2]}", src=r.path) for r in aof]
        out.append(
            Placement(f"{layout.appenddirname}/{manifest_name(layout.appendfilename)}", src=listing.path)
        )
        return out, "AOF and RDB restored (the server runs with AOF, which it loads)"
    base, text = rdb_as_base(layout.appendfilename)
    out.append(Placement(f"{layout.appenddirname}/{base}", src=rdb.path))
    out.append(
        Placement(f"{layout.appenddirname}/{manifest_name(layout.appendfilename)}", content=text.encode())
    )
    return out, "RDB restored, also as the AOF's base (the backup has no AOF; the server runs with AOF)"


def _check_destination(dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} exists and is not empty; restore never writes over data")
    if not dest.parent.is_dir():
        raise UsageError(f"{dest.parent} does not exist; create it first")


def _to_directory(staging: Path, records: list[FileRecord], dest: Path, m: Manifest) -> str:
    _check_destination(dest)
    dest.mkdir(exist_ok=True)
    for record in records:
        (dest / record.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staging / record.path, dest / record.path)
    aof = "yes" if m.details.get("aof") else "no"
    return f"files written to {dest}; use them with: redis-server --dir {dest} --appendonly {aof}"


def _swap_and_start(
    ws: Workspace, service: Service, staging: Path, placements: list[Placement], target: Target
) -> Path:
    runtime = runtime_for(service, ws.state_dir)
    ledger = ws.state_dir / "replacing" / f"{service.name}.json"
    undo_unfinished(ledger, now=ws.clock.now(), stop=lambda: runtime.stop(STOP_TIMEOUT), live=target.data_dir)
    _stop(service, runtime)
    names = (target.layout.dbfilename, target.layout.appenddirname)
    try:
        if not target.data_dir.exists():  # a lost volume: restore into a fresh directory
            target.data_dir.mkdir(parents=True)
            chown_tree(target.data_dir, service.runtime.os_user)
        aside = move_aside(
            target.data_dir,
            "before-restore",
            now=ws.clock.now(),
            inside=True,
            only=names,
            prefix="",
            ledger=ledger,
        )
    except BaseException as exc:
        with deferred():
            runtime.start()
        raise RolledBackError(f"{_why(exc)}; nothing was moved and {service.name} was started again") from exc
    try:
        _give(aside.path or target.data_dir, target.data_dir, service)
        _place(staging, placements, target.data_dir, service)
        runtime.start()
        with open_server(service) as server:
            server.wait_loaded(timeout=LOAD_TIMEOUT, alive=runtime.is_running, clock=ws.clock)
    except BaseException as exc:
        with deferred():
            try:
                _roll_back(ws, runtime, aside)
            except Exception as again:
                raise OperationError(
                    f"{service.name} did not come up with the restored files ({_why(exc)}), and putting "
                    f"its previous files back failed too ({_why(again)}); they are in {aside.describe()}"
                ) from again
        raise RolledBackError(
            f"{service.name} did not come up with the restored files ({_why(exc)}); its previous files "
            f"are back in place and it was started again"
        ) from exc
    settle(aside)
    return aside.path or target.data_dir


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, DrkitError):
        return exc.message
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}"
    return f"{type(exc).__name__}: {exc}"


def _stop(service: Service, runtime: Runtime) -> None:
    runtime.stop(STOP_TIMEOUT)
    with open_server(service) as server:
        try:
            wait_for(
                lambda: not server.answers(), timeout=STOP_TIMEOUT, what=f"{service.name} to stop answering"
            )
        except OperationError as exc:
            raise OperationError(
                f"{service.name} still answers after {runtime.description} stopped it: it is not run "
                "by that runtime; nothing was changed"
            ) from exc


def _place(staging: Path, placements: list[Placement], data_dir: Path, service: Service) -> None:
    for p in placements:
        dest = data_dir / p.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_beside(dest)
        try:
            with os.fdopen(fd, "wb") as fh:
                if p.src is not None:
                    with open(staging / p.src, "rb") as src:
                        shutil.copyfileobj(src, fh)
                else:
                    fh.write(p.content or b"")
                fh.flush()
                os.fchmod(fh.fileno(), 0o644)
                os.fsync(fh.fileno())
            tmp.rename(dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(dest.parent)
    for top in {p.dest.split("/")[0] for p in placements}:
        _give(data_dir / top, data_dir, service)


def _give(path: Path, data_dir: Path, service: Service) -> None:
    """Owned by the service's OS user, or like the data directory (a container's redis user)."""
    if os.geteuid() != 0:
        return
    if service.runtime.os_user:
        chown_tree(path, service.runtime.os_user)
        return
    st = data_dir.stat()
    for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
        os.lchown(item, st.st_uid, st.st_gid)


def _roll_back(ws: Workspace, runtime: Runtime, aside: Aside) -> None:
    runtime.stop(STOP_TIMEOUT)
    roll_back(aside, now=ws.clock.now())
    runtime.start()


def _compare(ws: Workspace, service: Service, m: Manifest) -> list[CheckResult]:
    with open_server(service) as server:
        return compare_server(server, m, int(ws.clock.now().timestamp() * 1000))
