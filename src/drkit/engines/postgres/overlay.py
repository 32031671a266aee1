"""Apply one incremental backup, as stored, onto the data directory its parent restored.

The incremental's tar stream is read part by part (each part's SHA-256 checked, the next one
decoded while this one is written) and applied where it lies: a whole file replaces the
parent's; `INCREMENTAL.<name>` cuts and extends `<name>` as its header says and writes its
blocks at their place; what the incremental does not list (a dropped table, a removed
database) goes. Nothing is staged: the full backup is written once, each incremental only
adds what changed. The members are checked first, as for a full restore (tar_restore.py):
only files and directories, safe relative names, each once; everything is opened under the
destination without following symlinks.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from drkit.adapters.postgres.incremental_file import (
    PREFIX,
    IncrementalFormatError,
    IncrementalHeader,
    needed_header_bytes,
    parse_header,
)
from drkit.adapters.postgres.tarindex import Member
from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.port import Repository
from drkit.domain.backup import StoredFile
from drkit.domain.errors import IntegrityError
from drkit.engines.postgres.tar_restore import OpenDirs, check_members, get_checked, member_path
from drkit.infra.writeback import start_writeback

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
KEEP = frozenset({"log"})  # made by the restore after extraction, never in a backup


@dataclass
class _Target:
    """One file member and where its bytes go."""

    member: Member
    path: tuple[str, ...]  # the file it writes (INCREMENTAL. taken off)
    incremental: bool
    fd: int = -1
    skip: bool = False  # a later incremental replaces it whole: nothing to write here
    size: int = 0  # an incremental file's target: its size before
    runs: list[int] = field(default_factory=list)  # per block held: how many follow it in a row
    head: bytearray = field(default_factory=bytearray)
    header: IncrementalHeader | None = None


def target_path(m: Member) -> tuple[tuple[str, ...], bool]:
    """The path a member writes and whether it is an incremental file."""
    parts = member_path(m)
    if m.type == "file" and parts[-1].startswith(PREFIX) and len(parts[-1]) > len(PREFIX):
        return (*parts[:-1], parts[-1][len(PREFIX) :]), True
    return parts, False


def apply_incremental(
    repo: Repository,
    codec: Codec,
    directory: str,
    parts: list[StoredFile],
    members: list[Member],
    dest: Path,
    *,
    block_size: int,
    backup_id: str,
    progress: Callable[[int], None] | None = None,
    superseded: frozenset[tuple[str, ...]] = frozenset(),
) -> int:
    """Apply the incremental backup `backup_id` onto `dest`; the bytes of data written.
    `superseded`: files a later incremental stores whole, not written here (a part that
    holds nothing else is not even read)."""
    check_members(members)
    targets = _targets(members, backup_id)
    for t in targets:
        t.skip = t.path in superseded
    root = os.open(dest, _DIR_FLAGS)
    try:
        _remove_unlisted(root, {t.path for t in targets} | _dirs(members))
        writer = _Writer(root, targets, block_size, backup_id)
        try:
            _prepare(writer, members)
            for part, raw in _decoded(repo, codec, directory, parts, _needed(parts, targets)):
                writer.feed(raw, part.raw_size)
                if progress:
                    progress(writer.written)
            writer.finish()
        finally:
            writer.close()
        return writer.written
    finally:
        os.close(root)


def _targets(members: list[Member], backup_id: str) -> list[_Target]:
    out: list[_Target] = []
    seen: dict[tuple[str, ...], str] = {}
    for m in members:
        if m.type != "file":
            continue
        path, incremental = target_path(m)
        if path in seen:
            raise IntegrityError(
                f"incremental backup {backup_id} holds both {seen[path]!r} and {m.name!r}; "
                f"refusing to restore"
            )
        seen[path] = m.name
        out.append(_Target(m, path, incremental))
    return sorted(out, key=lambda t: t.member.offset)


def _dirs(members: list[Member]) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for m in members:
        parts = member_path(m)
        upto = parts if m.type == "dir" else parts[:-1]
        out.update(upto[:i] for i in range(1, len(upto) + 1))
    return out


def _remove_unlisted(root: int, wanted: set[tuple[str, ...]]) -> None:
    """Files and directories the incremental does not list were removed from the cluster
    between the backups: remove them here too (never following a symlink)."""
    for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=root, follow_symlinks=False):
        base = tuple(p for p in Path(dirpath).parts if p != ".")
        for name in list(dirnames):
            if (*base, name) not in wanted and not (not base and name in KEEP):
                _remove_tree(dirfd, name)
                dirnames.remove(name)
        for name in filenames:
            if (*base, name) not in wanted:
                os.unlink(name, dir_fd=dirfd)


def _remove_tree(parent: int, name: str) -> None:
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent)
        return
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        for entry in os.listdir(fd):
            _remove_tree(fd, entry)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


def _prepare(writer: _Writer, members: list[Member]) -> None:
    """Every directory; every file an incremental file applies to checked to be there (the
    parent restored it) and its size noted. Nothing is opened yet: most incremental files
    of a day change nothing, and are never opened at all."""
    for m in members:
        if m.type == "dir":
            os.fchmod(writer.dirs.get(member_path(m)), m.mode & 0o777 or 0o700)
    for t in writer.targets:
        if not t.incremental or t.skip:
            continue
        try:
            st = os.stat(t.path[-1], dir_fd=writer.dirs.get(t.path[:-1]), follow_symlinks=False)
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"incremental backup {writer.backup_id} changes {'/'.join(t.path)}, which its parent "
                f"does not hold; refusing to restore"
            ) from exc
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError(f"{'/'.join(t.path)} in the restored directory is not a regular file")
        t.size = st.st_size


class _Writer:
    """The incremental's tar stream, in order: each byte of member data to where it belongs
    (each file open while its bytes pass, then closed)."""

    def __init__(self, root: int, targets: list[_Target], block_size: int, backup_id: str) -> None:
        self.targets, self.block_size, self.backup_id = targets, block_size, backup_id
        self.dirs = OpenDirs(root, create=True)
        self.pos = 0  # stream bytes consumed
        self.next = 0  # the first target not yet complete
        self.written = 0

    def feed(self, data: bytes | None, length: int) -> None:
        """The next `length` bytes of the stream (None: a part not read, holding only data
        of skipped targets)."""
        view = memoryview(data) if data is not None else None
        a, b = self.pos, self.pos + length
        targets = self.targets
        while self.next < len(targets) and targets[self.next].member.offset <= b:
            t = targets[self.next]
            end = t.member.offset + t.member.size
            lo, hi = max(a, t.member.offset), min(b, end)
            if lo < hi and not t.skip and view is not None:
                self._write(t, view[lo - a : hi - a], lo - t.member.offset)
            if end > b:
                break
            self._done(t)
            self.next += 1
        self.pos = b

    def _write(self, t: _Target, piece: memoryview, at: int) -> None:
        if not t.incremental:
            fd = self._fd(t)
            os.pwrite(fd, piece, at)
            start_writeback(fd, at, len(piece))
            self.written += len(piece)
            return
        while len(piece):
            if t.header is None:
                take = min(len(piece), self._header_want(t) - len(t.head))
                t.head += piece[:take]
                piece, at = piece[take:], at + take
                if len(t.head) >= 8 and len(t.head) == self._header_want(t):
                    self._apply_header(t)
                continue
            h = t.header
            i, within = divmod(at - h.length, self.block_size)
            n = min(len(piece), t.runs[i] * self.block_size - within)  # consecutive blocks at once
            fd = self._fd(t)
            os.pwrite(fd, piece[:n], h.blocks[i] * self.block_size + within)
            start_writeback(fd, h.blocks[i] * self.block_size + within, n)
            self.written += n
            piece, at = piece[n:], at + n

    def _damaged(self, t: _Target, why: object) -> IntegrityError:
        return IntegrityError(
            f"incremental file {t.member.name!r} of backup {self.backup_id} is damaged ({why}); "
            f"refusing to restore"
        )

    def _header_want(self, t: _Target) -> int:
        """How many header bytes to collect: 8 to learn the block count, then all of it."""
        if len(t.head) < 8:
            return 8
        try:
            raw = needed_header_bytes(bytes(t.head[:8]))
        except IncrementalFormatError as exc:
            raise self._damaged(t, exc) from exc
        if raw > 12 and raw % self.block_size:
            raw += self.block_size - raw % self.block_size
        return raw

    def _apply_header(self, t: _Target) -> None:
        """The header is whole: cut and extend the file as it says (unless it stays as it is)."""
        try:
            h = parse_header(bytes(t.head), block_size=self.block_size, member_size=t.member.size)
        except IncrementalFormatError as exc:
            raise self._damaged(t, exc) from exc
        t.header = h
        t.runs = [1] * len(h.blocks)
        for i in range(len(h.blocks) - 2, -1, -1):
            if h.blocks[i + 1] == h.blocks[i] + 1:
                t.runs[i] = t.runs[i + 1] + 1
        cut, length = min(t.size, h.truncate * self.block_size), h.file_blocks * self.block_size
        if cut == t.size == length:
            return
        fd = self._fd(t)
        os.ftruncate(fd, cut)
        os.ftruncate(fd, length)

    def _fd(self, t: _Target) -> int:
        """Open when the first bytes come: an incremental file's target as it is, a whole
        file as it is or created. A whole file is written over and then cut to its length,
        never emptied first: emptying a file whose pages are still being written to disk
        waits for that write, overwriting them does not."""
        if t.fd < 0:
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
            if not t.incremental:
                flags |= os.O_CREAT
            dirfd = self.dirs.get(t.path[:-1])
            try:
                t.fd = os.open(t.path[-1], flags, t.member.mode & 0o777 or 0o600, dir_fd=dirfd)
            except OSError as exc:
                raise IntegrityError(f"cannot restore {t.member.name!r}: {exc.strerror}; refusing") from exc
        return t.fd

    def _done(self, t: _Target) -> None:
        if t.skip:
            return
        if t.incremental and t.header is None:
            raise self._damaged(t, f"{t.member.size} bytes, shorter than its header")
        if not t.incremental:
            fd = self._fd(t)  # (an empty file: opened only here)
            if os.fstat(fd).st_size != t.member.size:
                os.ftruncate(fd, t.member.size)
        if t.fd >= 0:
            os.close(t.fd)
            t.fd = -1

    def finish(self) -> None:
        if self.next < len(self.targets):
            t = self.targets[self.next]
            raise IntegrityError(f"the stream of backup {self.backup_id} ends inside {t.member.name!r}")

    def close(self) -> None:
        for t in self.targets:
            if t.fd >= 0:
                os.close(t.fd)
                t.fd = -1
        self.dirs.close()


def _needed(parts: list[StoredFile], targets: list[_Target]) -> list[bool]:
    """Which parts are read: all but those holding data of skipped targets only (targets
    sorted in stream order)."""
    needed = []
    lo, j = 0, 0
    for part in parts:
        hi = lo + part.raw_size
        while j < len(targets) and targets[j].member.offset + targets[j].member.size <= lo:
            j += 1
        k, written, skipped = j, False, False
        while k < len(targets) and targets[k].member.offset < hi:
            t = targets[k]
            if t.member.size > 0 and t.member.offset + t.member.size > lo:
                written, skipped = written or not t.skip, skipped or t.skip
            k += 1
        needed.append(written or not skipped)  # a part of skipped data only is not read
        lo = hi
    return needed


def _decoded(
    repo: Repository, codec: Codec, directory: str, parts: list[StoredFile], needed: list[bool]
) -> Iterator[tuple[StoredFile, bytes | None]]:
    """Each part that is needed checked and decoded, in order (the next one decoded while
    this one is used); None for the others, which are not read."""

    def load(part: StoredFile) -> bytes:
        raw = codec.decode(get_checked(repo, directory, part, what="backup file"), name=part.name)
        if len(raw) != part.raw_size:
            raise IntegrityError(
                f"backup file {part.name} decodes to {len(raw)} bytes, the manifest says {part.raw_size}"
            )
        return raw

    wanted = [i for i, need in enumerate(needed) if need]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="overlay") as pool:
        futures: dict[int, Future[bytes]] = {}

        def schedule(nth: int) -> None:
            if nth < len(wanted):
                futures[wanted[nth]] = pool.submit(load, parts[wanted[nth]])

        schedule(0)
        nth = 0
        try:
            for i, part in enumerate(parts):
                if not needed[i]:
                    yield part, None
                    continue
                nth += 1
                schedule(nth)  # decoded while this one is written
                yield part, futures.pop(i).result()
        finally:
            for f in futures.values():
                f.cancel()
