"""Restore a tar stream stored as independently compressed parts, in parallel.

Each worker fetches one part, checks its SHA-256 against the manifest, decrypts and
decompresses it, and writes the slice of every file that lies in it at the right offset
(the tar index says where each member's data starts).

Repository content is untrusted input. The tar index is checked against its SHA-256 in the
manifest before it is used, and every member before anything is written: only regular
files and directories are restored (pg_basebackup writing one tar stream to stdout never
holds anything else: it cannot include other tablespaces, and writes pg_wal as a
directory), with relative names free of `..`, each name once. Everything is created under
the destination relative to an open directory, without following symlinks: directories are
opened with O_NOFOLLOW, files created with O_CREAT | O_NOFOLLOW in the directory this restore
made (0700, its own; each name checked to be there once). A file is created by the worker
that first writes it (creating a file costs about a millisecond on some filesystems: the
workers' decompression goes on meanwhile), an empty one by a thread of its own.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from drkit.adapters.postgres.tarindex import Member, members_from_json
from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.port import Repository
from drkit.domain.backup import Manifest, StoredFile
from drkit.domain.errors import DrkitError, IntegrityError, OperationError
from drkit.infra.writeback import start_writeback

RESTORED_TYPES = ("file", "dir")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def read_index(
    repo: Repository, codec: Codec, directory: str, manifest: Manifest, default: str
) -> list[Member]:
    """The backup's tar index, once its SHA-256 matches the one the manifest records."""
    name = str(manifest.details.get("tar_index", default))
    try:
        index = manifest.file(name)
    except KeyError as exc:
        raise IntegrityError(f"the manifest of {manifest.backup_id} lists no tar index {name}") from exc
    stored = _get_checked(repo, directory, index, what="tar index")
    try:
        return members_from_json(codec.decode(stored, name=index.name))
    except ValueError as exc:
        raise IntegrityError(f"tar index {index.name} is unreadable ({exc}); refusing to restore") from exc


def _get_checked(repo: Repository, directory: str, stored_file: StoredFile, *, what: str) -> bytes:
    name = stored_file.name
    if "/" in name or name in ("", ".", "..") or "\0" in name:
        raise IntegrityError(f"the manifest names a {what} {name!r} outside the backup; refusing to restore")
    try:
        stored = repo.get(f"{directory}/{name}")
    except FileNotFoundError as exc:
        raise IntegrityError(f"{what} {name} is missing") from exc
    if sha256(stored) != stored_file.sha256:
        raise IntegrityError(f"{what} {name} does not match its SHA-256 in the manifest; refusing to restore")
    return stored


get_checked = _get_checked  # for the other readers of a stored tar stream (overlay.py)


def member_path(m: Member) -> tuple[str, ...]:
    """The member's path components; IntegrityError for anything that could leave the target."""
    parts = tuple(m.name.split("/"))
    if all(p and p not in (".", "..") for p in parts) and "\0" not in m.name:
        return parts  # a plain relative name, as pg_basebackup writes them (PurePosixPath is slow)
    path = PurePosixPath(m.name)
    if not m.name or "\0" in m.name or path.is_absolute() or ".." in path.parts or not path.parts:
        raise IntegrityError(f"backup holds an unsafe path {m.name!r}; refusing to restore")
    return path.parts


def check_members(members: Iterable[Member]) -> None:
    """Refuse, naming the member, anything but uniquely named files and directories."""
    seen: set[tuple[str, ...]] = set()
    for m in members:
        parts = member_path(m)
        if m.type not in RESTORED_TYPES:
            target = f" to {m.linkname!r}" if m.linkname else ""
            raise IntegrityError(
                f"backup member {m.name!r} is a {m.type}{target}; a PostgreSQL base backup holds "
                f"only files and directories; refusing to restore"
            )
        if parts in seen:
            raise IntegrityError(f"backup member {m.name!r} appears twice; refusing to restore")
        seen.add(parts)


class OpenDirs:
    """Directories under the destination, opened one component at a time with O_NOFOLLOW (a
    symlink anywhere on the way is an error), made on the way if `create`; each kept open
    while used, at most LIMIT at a time."""

    LIMIT = 128

    def __init__(self, root: int, *, create: bool) -> None:
        self.root, self.create = root, create
        self.fds: dict[tuple[str, ...], int] = {}

    def get(self, parts: tuple[str, ...]) -> int:
        if not parts:
            return self.root
        fd = self.fds.get(parts)
        if fd is None:
            if len(self.fds) >= self.LIMIT:
                self.close()
            parent = self.get(parts[:-1])
            if self.create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(parts[-1], 0o700, dir_fd=parent)
            fd = self.fds[parts] = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _prepare(root: int, members: list[Member]) -> None:
    """Every directory (the files are created as they are filled)."""
    dirs = OpenDirs(root, create=True)
    try:
        for m in members:
            parts = member_path(m)
            try:
                if m.type == "dir":
                    os.fchmod(dirs.get(parts), m.mode & 0o777 or 0o700)
                else:
                    dirs.get(parts[:-1])
            except OSError as exc:
                raise _cannot(m, exc) from exc
    finally:
        dirs.close()


def _create_empty(root: int, members: list[Member], lengths: dict[str, int] | None = None) -> int:
    """The files no worker writes: the empty ones (or, in a chain, those at a `lengths`
    given, whose data the incrementals supplied)."""
    dirs = OpenDirs(root, create=False)
    try:
        for m in members:
            parts = member_path(m)
            try:
                fd = os.open(parts[-1], _CREATE, _mode(m), dir_fd=dirs.get(parts[:-1]))
                try:
                    _set_length(fd, (lengths or {}).get(m.name))
                finally:
                    os.close(fd)
            except OSError as exc:
                raise _cannot(m, exc) from exc
    finally:
        dirs.close()
    return 0


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def _set_length(fd: int, length: int | None) -> None:
    """A file of a chain whose newest version an incremental describes gets that version's
    length (every write lies below it: setting it twice changes nothing)."""
    if length is not None and os.fstat(fd).st_size != length:
        os.ftruncate(fd, length)


def _cannot(m: Member, exc: OSError) -> DrkitError:
    if exc.errno in _LOCAL_ERRORS:  # this host's disk, not the backup
        return OperationError(f"cannot create {m.name} in the restore: {_local(exc)}")
    return IntegrityError(f"cannot restore backup member {m.name!r}: {exc.strerror}; refusing")


_LOCAL_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM)


def _local(exc: OSError) -> str:
    return "no space left on the device" if exc.errno == errno.ENOSPC else str(exc.strerror or exc)


def _mode(m: Member) -> int:
    return m.mode & 0o777 or 0o600


def make_dest(dest: Path) -> int:
    """Create `dest` (it must not exist) and open it without following symlinks."""
    try:
        dest.mkdir(mode=0o700, parents=False)
    except FileExistsError as exc:
        raise OperationError(f"{dest} already exists; restore never writes over data") from exc
    except FileNotFoundError as exc:
        raise OperationError(f"{dest.parent} does not exist") from exc
    try:
        root = os.open(dest, _DIR_FLAGS)
    except OSError as exc:
        raise OperationError(f"{dest} changed while it was being created ({exc.strerror})") from exc
    if os.fstat(root).st_uid != os.geteuid():
        os.close(root)
        raise OperationError(f"{dest} changed while it was being created (another owner)")
    return root


Ranges = dict[str, list[tuple[int, int]]]  # member name -> the byte ranges of it to write


def restore_parts(
    repo: Repository,
    codec: Codec,
    directory: str,
    parts: list[StoredFile],
    members: list[Member],
    dest: Path,
    *,
    parallel: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the archive into `dest` (must not exist). Returns the bytes of data written.
    A failure of this host's disk (full, read-only) is an OperationError naming the path."""
    check_members(members)
    root = make_dest(dest)
    try:
        with local_failures(dest):
            _prepare(root, members)
            return _fill(repo, codec, directory, parts, members, root, parallel, progress)
    finally:
        os.close(root)


def restore_files_into(
    repo: Repository,
    codec: Codec,
    directory: str,
    parts: list[StoredFile],
    members: list[Member],
    root: int,
    *,
    wanted: frozenset[str],
    ranges: Ranges,
    lengths: dict[str, int],
    parallel: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write only the files named in `wanted` (those in `ranges` only there, and made
    `lengths` long) into the directory open as `root`, whose directories exist. A part holding
    nothing to write is not read. (The full backup of a chain: chain_restore.py.)"""
    check_members(members)
    files = [m for m in members if m.type == "file" and m.name in wanted]
    _prepare(root, files)
    return _fill(repo, codec, directory, parts, members, root, parallel, progress, files, ranges, lengths)


@contextlib.contextmanager
def local_failures(dest: Path) -> Iterator[None]:
    """An OSError writing under `dest` as an OperationError naming the path."""
    try:
        yield
    except OSError as exc:
        where = f"{dest}/{exc.filename}" if exc.filename and not os.path.isabs(str(exc.filename)) else dest
        raise OperationError(f"cannot write the restore into {where}: {_local(exc)}") from exc


def _fill(
    repo: Repository,
    codec: Codec,
    directory: str,
    parts: list[StoredFile],
    members: list[Member],
    root: int,
    parallel: int,
    progress: Callable[[int], None] | None,
    chosen: list[Member] | None = None,
    ranges: Ranges | None = None,
    lengths: dict[str, int] | None = None,
) -> int:
    every = sorted((m for m in members if m.type == "file" and m.size), key=lambda m: m.offset)
    wanted = every if chosen is None else sorted((m for m in chosen if m.size), key=lambda m: m.offset)
    ranges = ranges or {}
    files = [m for m in wanted if ranges.get(m.name) != []]
    starts = [m.offset for m in files]
    every_starts = [m.offset for m in every]
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + part.raw_size)
    done = [0]
    partial = chosen is not None

    def work(i: int) -> int:
        part = parts[i]
        lo, hi = offsets[i], offsets[i + 1]
        if (
            partial
            and not _wanted_in(files, starts, ranges, lo, hi)
            and _holds_data(every, every_starts, lo, hi)
        ):
            done[0] += part.raw_size  # holds only what is not written: not read
            return 0
        stored = _get_checked(repo, directory, part, what="backup file")
        writer = _SliceWriter(root, files, starts, offsets[i], ranges, lengths)
        try:
            for n in codec.decode_into(stored, writer.buffer, name=part.name):
                writer.write(n)
        finally:
            writer.close()
        if writer.pos - offsets[i] != part.raw_size:
            raise IntegrityError(
                f"backup file {part.name} decodes to {writer.pos - offsets[i]} bytes, "
                f"the manifest says {part.raw_size}"
            )
        done[0] += part.raw_size
        if progress:
            progress(done[0])
        return writer.written

    source = members if chosen is None else chosen
    unwritten = [m for m in source if m.type == "file" and (not m.size or ranges.get(m.name) == [])]
    pool = ThreadPoolExecutor(max_workers=parallel + 1, thread_name_prefix="restore")
    try:
        empty = pool.submit(_create_empty, root, unwritten, lengths)  # meanwhile, in a thread of its own
        written = sum(pool.map(work, range(len(parts))))
        return written + empty.result()
    finally:  # on a failure or a signal: the parts not started are not started
        pool.shutdown(wait=True, cancel_futures=True)


def _wanted_in(files: list[Member], starts: list[int], ranges: Ranges, lo: int, hi: int) -> bool:
    """Whether any byte of [lo, hi) of the stream is to be written."""
    k = max(bisect.bisect_right(starts, lo) - 1, 0)
    while k < len(files) and files[k].offset < hi:
        m = files[k]
        a, b = max(lo, m.offset) - m.offset, min(hi, m.offset + m.size) - m.offset
        within = ranges.get(m.name)
        if a < b and (within is None or _overlaps(within, a, b)):
            return True
        k += 1
    return False


def _end(r: tuple[int, int]) -> int:
    return r[1]


def _overlaps(within: list[tuple[int, int]], a: int, b: int) -> bool:
    """Whether any of the sorted, disjoint ranges meets [a, b)."""
    r = bisect.bisect_right(within, a, key=_end)
    return r < len(within) and within[r][0] < b


def _holds_data(files: list[Member], starts: list[int], lo: int, hi: int) -> bool:
    """Whether any of `files` (sorted, not overlapping) has data in [lo, hi) of the stream."""
    k = bisect.bisect_right(starts, lo) - 1
    if k >= 0 and files[k].offset + files[k].size > lo:
        return True
    return k + 1 < len(files) and files[k + 1].offset < hi


class _SliceWriter:
    """Writes consecutive pieces of the tar stream's data into the files they belong to,
    each file opened once per part (it exists already; opened without following symlinks)."""

    PIECE = 1 << 20

    def __init__(
        self,
        root: int,
        files: list[Member],
        starts: list[int],
        pos: int,
        ranges: Ranges | None = None,
        lengths: dict[str, int] | None = None,
    ) -> None:
        self.root, self.files, self.pos, self.ranges = root, files, pos, ranges or {}
        self.lengths = lengths or {}
        self.buffer = bytearray(self.PIECE)
        self.view = memoryview(self.buffer)
        self.next = max(bisect.bisect_right(starts, pos) - 1, 0)  # first member not yet done
        self.fds: dict[int, int] = {}
        self.dirs = OpenDirs(root, create=False)
        self.written = 0

    def write(self, n: int) -> None:
        a, b = self.pos, self.pos + n
        files = self.files
        while self.next < len(files) and files[self.next].offset + files[self.next].size <= a:
            self._close(self.next)
            self.next += 1
        j = self.next
        while j < len(files) and files[j].offset < b:
            m = files[j]
            lo, hi = max(a, m.offset), min(b, m.offset + m.size)
            within = self.ranges.get(m.name)
            if within is None:
                self._put(j, lo, hi, a)
            else:  # only the blocks no newer link of a chain supplies
                r = bisect.bisect_right(within, lo - m.offset, key=_end)
                first = r
                while r < len(within) and within[r][0] < hi - m.offset:
                    x, y = within[r]
                    self._put(j, max(lo, m.offset + x), min(hi, m.offset + y), a, flush=False)
                    r += 1
                if r > first:  # one writeback call for the piece, not one per range
                    start = max(lo, m.offset + within[first][0])
                    end = min(hi, m.offset + within[r - 1][1])
                    start_writeback(self.fds[j], start - m.offset, end - start)
            j += 1
        self.pos = b

    def _put(self, j: int, lo: int, hi: int, a: int, *, flush: bool = True) -> None:
        """Stream bytes [lo, hi) (the piece starts at `a`) to member j's file."""
        if lo >= hi:
            return
        m = self.files[j]
        fd = self._fd(j)
        try:
            os.pwrite(fd, self.view[lo - a : hi - a], lo - m.offset)
        except OSError as exc:
            exc.filename = m.name  # the member, under the destination
            raise
        if flush:
            start_writeback(fd, lo - m.offset, hi - lo)  # the disk works meanwhile
        self.written += hi - lo

    def _fd(self, j: int) -> int:
        fd = self.fds.get(j)
        if fd is None:
            m = self.files[j]
            parts = member_path(m)
            try:  # created by the first worker to write it
                fd = self.fds[j] = os.open(parts[-1], _CREATE, _mode(m), dir_fd=self.dirs.get(parts[:-1]))
                _set_length(fd, self.lengths.get(m.name))
            except OSError as exc:
                raise _cannot(m, exc) from exc
        return fd

    def _close(self, j: int) -> None:
        fd = self.fds.pop(j, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for j in list(self.fds):
            self._close(j)
        self.dirs.close()
