"""Read a running cluster's data directory as a tar stream of what changed since a parent
backup started (PostgreSQL below 17, between `pg_backup_start` and `pg_backup_stop`).

What is read, and left out, is what pg_basebackup sends (src/backend/backup/basebackup.c):
not the contents of pg_wal, pg_replslot, pg_stat_tmp, pg_dynshmem, pg_notify, pg_serial,
pg_snapshots and pg_subtrans; not postmaster.pid/.opts, pg_internal.init, temporary files,
an old backup_label; not the main fork of unlogged relations (their `_init` fork is kept).

A relation's main fork (`base/DB/REL`, `global/REL`, and their `.N` segments) is read block by
block: a block whose page LSN is after the parent's start LSN (or zero: new or never written)
may differ from the parent's copy, and only those are stored, as `INCREMENTAL.<name>` in
PostgreSQL 17's format (incremental_file.py); a file with most blocks changed is stored whole.
Every other file is stored whole (the free space map and visibility map are not WAL-logged
page by page). A block changed while it is read is rewritten by WAL replay from the backup's
start, which holds a full image of its first change after the start's checkpoint, so a torn
read is harmless, as for pg_basebackup.

`method="file"` stores a whole relation file when any block changed instead (the file-level
incremental of pgBackRest's `--type=incr`); it exists for the measurement in bench/.

A relation file (any fork) whose size and modification time are those the parent's scan
recorded, and that was last written well before that scan began, is not read at all: an
empty incremental file keeps the parent's copy (pgBackRest's rule for its incremental
backups). A write changes the modification time to a moment after that scan began, so a
file written since never passes.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from drkit.adapters.postgres.incremental_file import PREFIX, IncrementalHeader
from drkit.domain.errors import OperationError

EXCLUDE_CONTENTS = frozenset(
    {
        "pg_wal",
        "pg_replslot",
        "pg_stat_tmp",
        "pg_dynshmem",
        "pg_notify",
        "pg_serial",
        "pg_snapshots",
        "pg_subtrans",
    }
)
EXCLUDE_FILES = frozenset(
    {
        "postmaster.pid",
        "postmaster.opts",
        "pg_internal.init",
        "backup_label",
        "backup_label.old",
        "tablespace_map",
        "backup_manifest",
        "current_logfiles",
        "postgresql.auto.conf.tmp",
    }
)
CONTROL = "global/pg_control"  # read last, as pg_basebackup sends it
RELATION = re.compile(r"^(\d+)(_(fsm|vm|init))?(\.\d+)?$")
CHUNK = 1 << 20
MOSTLY = 0.9  # above this share of changed blocks, a file is stored whole (as PostgreSQL 17 does)
MARGIN_NS = 2_000_000_000  # a file written this close before the parent's scan is read again


@dataclass(frozen=True)
class Seen:
    """What a scan recorded: when it began, and each file's size and modification time."""

    started_ns: int = 0
    files: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(
            {"started_ns": self.started_ns, "files": self.files}, separators=(",", ":")
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Seen:
        data = json.loads(raw)
        return cls(
            int(data["started_ns"]), {str(k): (int(v[0]), int(v[1])) for k, v in data["files"].items()}
        )


@dataclass
class ScanReport:
    files: int = 0
    whole_bytes: int = 0  # bytes of files stored whole
    blocks_read: int = 0
    blocks_stored: int = 0
    relation_files: int = 0
    incremental_files: int = 0
    unchanged_files: int = 0  # not read: as the parent's scan saw them
    skipped: list[str] = field(default_factory=list)  # vanished while read


def _tar_header(name: str, *, size: int, mode: int, mtime: float, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mode = mode & 0o7777
    info.mtime = int(mtime)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uname = info.gname = "postgres"
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _pad(size: int) -> bytes:
    return b"\0" * (-size % 512)


class DeltaScan:
    """The tar stream, produced as it is read (`chunks()`): every directory and file of the
    data directory, relation main forks as their changed blocks."""

    def __init__(
        self,
        data_dir: Path,
        since_lsn: int,
        *,
        block_size: int = 8192,
        method: str = "block",
        parent_seen: Seen | None = None,
    ) -> None:
        self.root, self.since, self.block_size, self.method = data_dir, since_lsn, block_size, method
        self.parent_seen = parent_seen or Seen()
        self.seen = Seen(time.time_ns())
        self.report = ScanReport()
        self.buffer = bytearray(CHUNK)

    def chunks(self) -> Iterator[bytes]:
        """Directories and files, depth first, pg_control last; no end-of-archive (the caller
        adds the label after pg_backup_stop)."""
        control: os.stat_result | None = None
        for rel, st in self._walk():
            if stat.S_ISDIR(st.st_mode):
                yield _tar_header(rel, size=0, mode=st.st_mode, mtime=st.st_mtime, directory=True)
            elif rel == CONTROL:
                control = st
            else:
                yield from self._file(rel, st)
        if control is None:
            raise OperationError(f"{self.root} holds no {CONTROL}: not a data directory")
        yield from self._file(CONTROL, os.lstat(self.root / CONTROL))

    def _walk(self) -> Iterator[tuple[str, os.stat_result]]:
        root = self.root
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            rel_dir = os.path.relpath(dirpath, root)
            top = rel_dir.split(os.sep)[0]
            dirnames.sort()
            for name in list(dirnames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    if rel_dir == "." and name == "pg_wal":
                        dirnames.remove(name)  # a pg_wal elsewhere: the directory only, empty
                        yield name, os.stat(path)
                        continue
                    raise OperationError(
                        f"{path} is a symbolic link (a tablespace?): drkit backs up one data directory"
                    )
                if name.startswith("pgsql_tmp"):
                    dirnames.remove(name)
            if rel_dir != ".":
                try:
                    yield rel_dir.replace(os.sep, "/"), os.lstat(dirpath)
                except FileNotFoundError:
                    continue
            if top in EXCLUDE_CONTENTS and rel_dir != ".":
                if rel_dir == "pg_wal":
                    dirnames[:] = [d for d in dirnames if d == "archive_status"]
                else:
                    dirnames.clear()
                continue
            unlogged = {m.group(1) for n in filenames if (m := RELATION.match(n)) and m.group(3) == "init"}
            for name in sorted(filenames):
                if name in EXCLUDE_FILES or name.startswith("pgsql_tmp"):
                    continue
                m = RELATION.match(name)
                if m and m.group(1) in unlogged and m.group(3) != "init" and rel_dir != ".":
                    continue
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    self.report.skipped.append(name)
                    continue
                if stat.S_ISREG(st.st_mode):
                    rel = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
                    yield rel, st

    def _file(self, rel: str, st: os.stat_result) -> Iterator[bytes]:
        try:
            fd = os.open(self.root / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:  # dropped since it was listed: WAL replay removes it too
            self.report.skipped.append(rel)
            return
        try:
            self.report.files += 1
            self.seen.files[rel] = (st.st_size, st.st_mtime_ns)
            kind = self._relation_kind(rel)
            if kind is not None and self._unchanged(rel, st):
                yield from self._reference(rel, st)
            elif kind == "main":
                yield from self._relation(rel, fd, st)
            else:
                yield from self._whole(rel, fd, st, st.st_size)
        finally:
            os.close(fd)

    def _relation_kind(self, rel: str) -> str | None:
        """`main` for a relation's main fork, its fork's name for another fork, else None."""
        parts = rel.split("/")
        if not (parts[0] == "base" and len(parts) == 3) and not (parts[0] == "global" and len(parts) == 2):
            return None
        m = RELATION.match(parts[-1])
        return None if m is None else (m.group(3) or "main")

    def _unchanged(self, rel: str, st: os.stat_result) -> bool:
        before = self.parent_seen.files.get(rel)
        return (
            before == (st.st_size, st.st_mtime_ns)
            and st.st_mtime_ns < self.parent_seen.started_ns - MARGIN_NS
            and st.st_size % self.block_size == 0
        )

    def _reference(self, rel: str, st: os.stat_result) -> Iterator[bytes]:
        """An empty incremental file: the parent's copy, as long as it is."""
        self.report.unchanged_files += 1
        header = IncrementalHeader((), st.st_size // self.block_size, self.block_size)
        head, tail = os.path.split(rel)
        yield _tar_header(
            f"{head}/{PREFIX}{tail}", size=header.member_size(), mode=st.st_mode, mtime=st.st_mtime
        )
        yield header.encode()
        yield _pad(header.member_size())

    def _whole(self, rel: str, fd: int, st: os.stat_result, size: int) -> Iterator[bytes]:
        """A whole file, exactly `size` bytes (zeros past an end it was cut to meanwhile)."""
        yield _tar_header(rel, size=size, mode=st.st_mode, mtime=st.st_mtime)
        done = 0
        while done < size:
            n = os.preadv(fd, [memoryview(self.buffer)[: min(CHUNK, size - done)]], done)
            if n <= 0:
                yield b"\0" * (size - done)
                break
            yield bytes(self.buffer[:n])
            done += n
        self.report.whole_bytes += size
        yield _pad(size)

    def _relation(self, rel: str, fd: int, st: os.stat_result) -> Iterator[bytes]:
        bs = self.block_size
        nblocks = st.st_size // bs
        changed, zero = self._changed_blocks(fd, nblocks)
        self.report.relation_files += 1
        self.report.blocks_read += nblocks
        if self.method == "file":  # the whole file when a block was written since the parent
            whole, changed = bool(changed), []
        else:
            changed = sorted(changed + zero)
            whole = len(changed) > MOSTLY * nblocks
        if whole:
            self.report.blocks_stored += nblocks
            yield from self._whole(rel, fd, st, nblocks * bs)
            return
        self.report.incremental_files += 1
        self.report.blocks_stored += len(changed)
        header = IncrementalHeader(tuple(changed), nblocks, bs)
        head, tail = os.path.split(rel)
        name = f"{head}/{PREFIX}{tail}"
        size = header.member_size()
        yield _tar_header(name, size=size, mode=st.st_mode, mtime=st.st_mtime)
        yield header.encode()
        for run_start, run_len in _runs(changed):
            want = run_len * bs
            data = os.pread(fd, want, run_start * bs)
            yield data + b"\0" * (want - len(data))
        yield _pad(size)

    def _changed_blocks(self, fd: int, nblocks: int) -> tuple[list[int], list[int]]:
        """Blocks whose page LSN is after the parent's start; blocks whose LSN is zero (new,
        or never written: the parent may hold something else there)."""
        bs, since = self.block_size, self.since
        per_block = bs // 4
        changed: list[int] = []
        zero: list[int] = []
        block = 0
        buf = self.buffer
        while block < nblocks:
            want = min(len(buf) // bs, nblocks - block) * bs
            n = os.preadv(fd, [memoryview(buf)[:want]], block * bs)
            n -= n % bs
            if n <= 0:
                break  # cut short meanwhile: the header's length still holds, WAL replay cuts it
            words = memoryview(buf)[:n].cast("I")
            for i, (hi, lo) in enumerate(zip(words[0::per_block], words[1::per_block], strict=True)):
                if (hi << 32 | lo) > since:
                    changed.append(block + i)
                elif not (hi or lo):
                    zero.append(block + i)
            block += n // bs
        zero.extend(range(block, nblocks))  # unread: cut meanwhile; stored as zeros
        return changed, zero

    def end(self, label: bytes, tablespace_map: bytes) -> Iterator[bytes]:
        """backup_label (and tablespace_map when there is one), then the end of the archive."""
        for name, data in (("backup_label", label), ("tablespace_map", tablespace_map)):
            if name == "tablespace_map" and not data:
                continue
            yield _tar_header(name, size=len(data), mode=0o600, mtime=0)
            yield data + _pad(len(data))
        yield b"\0" * 1024


def _runs(blocks: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive block numbers as (first, how many), at most 128 at a time (1 MiB)."""
    start = prev = -2
    for b in blocks:
        if b == prev + 1 and b - start < 128:
            prev = b
            continue
        if start >= 0:
            yield start, prev - start + 1
        start = prev = b
    if start >= 0:
        yield start, prev - start + 1
