"""A consistent copy of a running server's files, taken while its writes are paused.

1. Wait until no save or AOF rewrite runs; choose the sample keys (SCAN; no pause needed).
2. CLIENT PAUSE WRITE (clients' writes and key expiry wait; reads go on), then:
   - AOF on: wait until the AOF buffer is written to the file;
   - BGSAVE: the fork is the RDB's moment;
   - key counts and sample digests: the same moment;
   - AOF on: read the AOF manifest, open each base and incr file it lists and note its size:
     the AOF's cut is the same moment too.
   CLIENT UNPAUSE. The pause lasts a fork plus a few round trips.
3. Wait for the BGSAVE to finish and open the RDB; LASTSAVE must not have moved again, so
   the file opened is the one this BGSAVE wrote (Redis writes it to a temp name and renames
   it, so it is whole; automatic `save` rules cannot fire for their period after a save).
4. Copy the RDB, and each AOF file up to its noted size, into the staging directory. Open
   descriptors keep files that a later rewrite deletes readable; an incr file grows after
   the pause, but only the bytes up to the cut are copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drkit.adapters.redis.aof import BASE, AofEntry, manifest_name, parse_manifest
from drkit.adapters.redis.client import Keyspace, Layout, RedisServer, SaveMark
from drkit.adapters.redis.sample import KeyDigest, choose_sample, digest_keys
from drkit.domain.errors import OperationError
from drkit.domain.names import is_plain_name
from drkit.infra.clock import Clock, SystemClock

PAUSE_MS = 10_000
ATTEMPTS = 3
CHUNK = 1 << 20


@dataclass(frozen=True)
class StagedFile:
    path: str  # relative to the staging (and data) directory: dump.rdb, appendonlydir/...
    role: str  # rdb, aof-manifest, aof-base, aof-incr
    size: int
    sha256: str


@dataclass(frozen=True)
class Snapshot:
    layout: Layout
    version: str
    keyspace: Keyspace
    sample: tuple[KeyDigest, ...]
    files: tuple[StagedFile, ...]


@dataclass
class _Cut:
    """What was taken inside the pause."""

    keyspace: Keyspace
    sample: list[KeyDigest]
    aof_manifest: bytes | None = None
    aof_files: list[tuple[AofEntry, int, int]] = field(default_factory=list)  # entry, fd, size


def take_snapshot(
    server: RedisServer,
    staging: Path,
    *,
    host_dir: Path | None = None,
    timeout: float = 3600.0,
    clock: Clock | None = None,
) -> Snapshot:
    """Copy the server's RDB (and multi-part AOF when on) into `staging`, consistently.
    `host_dir`: where this host sees the server's `dir` (a container's volume), if not there."""
    clock = clock or SystemClock()
    layout = server.layout()
    for name in (layout.dbfilename, layout.appenddirname, layout.appendfilename):
        if not is_plain_name(name):
            raise OperationError(f"redis at {server.where}: unexpected file name {name!r} in its config")
    data_dir = host_dir or Path(layout.dir)
    version = server.version()
    with contextlib.ExitStack() as opened:
        cut, saved = _pause_and_cut(server, layout, data_dir, opened.callback, timeout, clock)
        rdb_fd = _open(data_dir / layout.dbfilename, opened.callback)
        if server.save_mark() != saved:
            raise OperationError(
                f"redis at {server.where}: another save replaced {layout.dbfilename} during the "
                "backup; run the backup again"
            )
        staging.mkdir(parents=True, exist_ok=True)
        files = [_copy(rdb_fd, None, staging, layout.dbfilename, "rdb")]
        if cut.aof_manifest is not None:
            files += _copy_aof(cut, staging / layout.appenddirname, layout)
    return Snapshot(layout, version, cut.keyspace, tuple(cut.sample), tuple(files))


def _pause_and_cut(
    server: RedisServer,
    layout: Layout,
    data_dir: Path,
    on_close: Callable[..., object],
    timeout: float,
    clock: Clock,
) -> tuple[_Cut, SaveMark]:
    """Pause writes, start the BGSAVE and take the cut; retried when another fork got in
    between (a BGSAVE is refused while a save or rewrite runs). Returns the cut and the
    save mark once the BGSAVE has finished."""
    for attempt in range(1, ATTEMPTS + 1):
        server.wait_idle(timeout=timeout, clock=clock)
        chosen = choose_sample(server, server.keyspace())
        before = server.save_mark()
        try:
            with server.writes_paused(PAUSE_MS, clock):
                if layout.appendonly:
                    server.wait_aof_flushed(timeout=PAUSE_MS / 2000, clock=clock)
                server.bgsave()
                cut = _Cut(
                    server.keyspace(),
                    [d for db, keys in chosen.items() for d in digest_keys(server, db, keys)],
                )
                if layout.appendonly:
                    _cut_aof(cut, data_dir / layout.appenddirname, layout, on_close)
        except OperationError as exc:
            if "in progress" not in str(exc) or attempt == ATTEMPTS:
                raise
            continue
        return cut, server.wait_saved(before, timeout=timeout, clock=clock)
    raise AssertionError("unreachable")


def _cut_aof(cut: _Cut, aof_dir: Path, layout: Layout, on_close: Callable[..., object]) -> None:
    path = aof_dir / manifest_name(layout.appendfilename)
    try:
        cut.aof_manifest = path.read_bytes()
    except FileNotFoundError as exc:
        raise OperationError(f"appendonly is on but {path} does not exist") from exc
    try:
        entries = parse_manifest(cut.aof_manifest.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise OperationError(f"{path}: {exc}") from exc
    for entry in entries:
        if entry.needed:
            fd = _open(aof_dir / entry.name, on_close)
            cut.aof_files.append((entry, fd, os.fstat(fd).st_size))


def _open(path: Path, on_close: Callable[..., object]) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise OperationError(
            f"{path} does not exist (is runtime.data_dir the directory redis writes to?)"
        ) from exc
    on_close(os.close, fd)
    return fd


def _copy_aof(cut: _Cut, dest: Path, layout: Layout) -> list[StagedFile]:
    dest.mkdir(parents=True, exist_ok=True)
    name = manifest_name(layout.appendfilename)
    manifest = cut.aof_manifest or b""
    (dest / name).write_bytes(manifest)
    staged = [
        StagedFile(
            f"{layout.appenddirname}/{name}",
            "aof-manifest",
            len(manifest),
            hashlib.sha256(manifest).hexdigest(),
        )
    ]
    for entry, fd, size in cut.aof_files:
        role = "aof-base" if entry.type == BASE else "aof-incr"
        staged.append(_copy(fd, size, dest, entry.name, role, prefix=f"{layout.appenddirname}/"))
    return staged


def _copy(fd: int, limit: int | None, dest_dir: Path, name: str, role: str, prefix: str = "") -> StagedFile:
    """Copy from `fd` (the first `limit` bytes, or all) to dest_dir/name, hashing on the way."""
    digest = hashlib.sha256()
    copied = 0
    with open(dest_dir / name, "wb") as out:
        while limit is None or copied < limit:
            want = CHUNK if limit is None else min(CHUNK, limit - copied)
            chunk = os.pread(fd, want, copied)
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            copied += len(chunk)
    if limit is not None and copied < limit:
        raise OperationError(f"{prefix}{name} shrank while it was copied ({copied} of {limit} bytes)")
    return StagedFile(f"{prefix}{name}", role, copied, digest.hexdigest())
