"""Restore a tar stream stored as independently compressed parts, in parallel.

Each worker fetches one part, checks its SHA-256 against the manifest, decrypts and
decompresses it, and writes the slice of every file that lies in it at the right offset
(the tar index says where each member's data starts). Member names are checked first: an
absolute path, a `..`, or a path through a symlink is refused before anything is written.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from drkit.adapters.postgres.tarindex import Member
from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.port import Repository
from drkit.domain.backup import StoredFile
from drkit.domain.errors import IntegrityError, OperationError


def check_member_names(members: list[Member]) -> None:
    links = {m.name for m in members if m.type == "symlink"}
    for m in members:
        path = PurePosixPath(m.name)
        if path.is_absolute() or ".." in path.parts or not m.name:
            raise IntegrityError(f"backup holds an unsafe path {m.name!r}; refusing to restore")
        for parent in path.parents:
            if str(parent) in links:
                raise IntegrityError(f"backup writes {m.name!r} through a symlink; refusing")


def _prepare(dest: Path, members: list[Member]) -> None:
    """Directories, symlinks and empty files; files with data are created by the workers
    that write them (in parallel, no pre-sizing)."""
    made: set[Path] = set()
    for m in members:
        target = dest / m.name
        if m.type == "dir":
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, m.mode & 0o7777 or 0o700)
            made.add(target)
            continue
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        if m.type == "symlink":
            os.symlink(m.linkname, target)
        elif m.size == 0:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _mode(m)))


def _mode(m: Member) -> int:
    return m.mode & 0o7777 or 0o600


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
    """Write the archive into `dest` (must not exist). Returns the bytes of data written."""
    check_member_names(members)
    try:
        dest.mkdir(mode=0o700, parents=False)
    except FileExistsError as exc:
        raise OperationError(f"{dest} already exists; restore never writes over data") from exc
    except FileNotFoundError as exc:
        raise OperationError(f"{dest.parent} does not exist") from exc
    _prepare(dest, members)
    files = sorted((m for m in members if m.type == "file" and m.size), key=lambda m: m.offset)
    starts = [m.offset for m in files]
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + part.raw_size)
    done = [0]

    def work(i: int) -> int:
        part = parts[i]
        key = f"{directory}/{part.name}"
        try:
            stored = repo.get(key)
        except FileNotFoundError as exc:
            raise IntegrityError(f"backup file {part.name} is missing") from exc
        if sha256(stored) != part.sha256:
            raise IntegrityError(f"backup file {part.name} does not match its SHA-256")
        writer = _SliceWriter(dest, files, starts, offsets[i])
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

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="restore") as pool:
        return sum(pool.map(work, range(len(parts))))


class _SliceWriter:
    """Writes consecutive pieces of the tar stream's data into the files they belong to,
    each file opened once per part."""

    PIECE = 1 << 20

    def __init__(self, dest: Path, files: list[Member], starts: list[int], pos: int) -> None:
        self.dest, self.files, self.pos = dest, files, pos
        self.buffer = bytearray(self.PIECE)
        self.view = memoryview(self.buffer)
        self.next = max(bisect.bisect_right(starts, pos) - 1, 0)  # first member not yet done
        self.fds: dict[int, int] = {}
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
            if lo < hi:
                os.pwrite(self._fd(j), self.view[lo - a : hi - a], lo - m.offset)
                self.written += hi - lo
            j += 1
        self.pos = b

    def _fd(self, j: int) -> int:
        fd = self.fds.get(j)
        if fd is None:
            m = self.files[j]
            fd = self.fds[j] = os.open(self.dest / m.name, os.O_WRONLY | os.O_CREAT, _mode(m))
        return fd

    def _close(self, j: int) -> None:
        fd = self.fds.pop(j, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for j in list(self.fds):
            self._close(j)
