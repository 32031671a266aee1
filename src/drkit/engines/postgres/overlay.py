"""Apply one incremental backup of a chain, as stored, newest link first (chain_plan.py says
what each link supplies).

The incremental's tar stream is read part by part (each part's SHA-256 checked, the next one
decoded while this one is written) and each byte of member data goes where it belongs, once:
a file this link supplies whole is written, but for the blocks a newer link supplied; an
`INCREMENTAL.<name>` file, at its header, is either the newest version of `<name>` (the file
is created at the length the header gives and every block is written) or an older one (only
the blocks no newer version holds, below the newer versions' truncation point). Files this
link does not supply are skipped (a part holding nothing else is not read). Each link's
backup_label is kept in memory for the chain to check, never written here. The members are
checked first, as for a full restore (tar_restore.py): only files and directories, safe
relative names, each once; everything is opened under the destination without following
symlinks, in the directories the chain restore made.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from drkit.adapters.postgres.incremental_file import (
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
from drkit.engines.postgres.chain_plan import LABEL, Claims, target_path
from drkit.engines.postgres.tar_restore import OpenDirs, get_checked
from drkit.infra.writeback import start_writeback

MAX_LABEL = 1 << 20
DECODE_AHEAD = 1  # parts fetched and hash-checked (in threads) while one is decoded and written
PIECE = 1 << 20  # decoded a piece at a time into one buffer (tar_restore.py: twice as fast as whole parts)
WRITEBACK_FROM = 1 << 20  # a few blocks changed are left to the kernel: a call per file costs more


@dataclass
class _Target:
    """One file member and where its bytes go."""

    member: Member
    path: tuple[str, ...]  # the file it writes (INCREMENTAL. taken off)
    incremental: bool
    fd: int = -1
    dirty: int = 0  # bytes written since opened
    skip: bool = False  # this link does not supply the file: nothing to write
    ranges: list[tuple[int, int]] | None = None  # a whole file: the byte ranges it supplies (None: all)
    use: list[bool] = field(default_factory=list)  # per block held: whether it is written
    runs: list[int] = field(default_factory=list)  # per block held: how many follow it alike
    head: bytearray = field(default_factory=bytearray)
    want: int = 0  # the header's length, once known
    header: IncrementalHeader | None = None


@dataclass
class Applied:
    written: int  # bytes of data written
    label: bytes | None  # the link's backup_label (None: it holds none)


@dataclass
class Link:
    """One incremental of the chain as its stream will be read: its members as targets (what
    the chain takes from each), and which of its parts are read at all."""

    backup_id: str
    directory: str
    parts: list[StoredFile]
    targets: list[_Target]
    needed: list[bool]


def prepare_link(
    backup_id: str,
    directory: str,
    parts: list[StoredFile],
    members: list[Member],
    used: frozenset[tuple[str, ...]],
) -> Link:
    """The link `backup_id`, whose members are checked (check_members, chain_plan), supplying
    the files in `used` (its backup_label is always read, to be checked)."""
    targets = _targets(members, backup_id)
    for t in targets:
        t.skip = t.path not in used and t.path != LABEL
    return Link(backup_id, directory, parts, targets, _needed(parts, targets))


def apply_incremental(
    link: Link,
    decoded: Iterator[tuple[StoredFile, bytes | None]],
    codec: Codec,
    root: int,
    *,
    block_size: int,
    claims: Claims,
    progress: Callable[[int], None] | None = None,
) -> Applied:
    """Write what `link` supplies (`claims`: the blocks newer links supplied) into the
    directory open as `root`, its parts taken from `decoded` (fetched_parts), decoded here a
    piece at a time."""
    writer = _Writer(root, link.targets, block_size, link.backup_id, claims)
    buffer = bytearray(PIECE)
    view = memoryview(buffer)
    try:
        for _ in link.parts:
            part, stored = next(decoded)
            if stored is None:
                writer.feed(None, part.raw_size)
                continue
            got = 0
            for n in codec.decode_into(stored, buffer, name=part.name):  # written while in the cache
                writer.feed(view[:n], n)
                got += n
            if got != part.raw_size:
                raise IntegrityError(
                    f"backup file {part.name} decodes to {got} bytes, the manifest says {part.raw_size}"
                )
            if progress:
                progress(writer.written)
        writer.finish()
    finally:
        writer.close()
    return Applied(writer.written, writer.label)


def _targets(members: list[Member], backup_id: str) -> list[_Target]:
    out: list[_Target] = []
    for m in members:  # (each path once: chain_plan.plan_files checked)
        if m.type != "file":
            continue
        path, incremental = target_path(m)
        if path == LABEL and (incremental or m.size > MAX_LABEL):
            raise IntegrityError(f"the backup_label of {backup_id} is not a label; refusing to restore")
        out.append(_Target(m, path, incremental))
    return sorted(out, key=lambda t: t.member.offset)


class _Writer:
    """The incremental's tar stream, in order: each byte of member data to where it belongs
    (each file open while its bytes pass, then closed)."""

    def __init__(
        self, root: int, targets: list[_Target], block_size: int, backup_id: str, claims: Claims
    ) -> None:
        self.targets, self.block_size, self.backup_id, self.claims = targets, block_size, backup_id, claims
        self.dirs = OpenDirs(root, create=False)
        self.pos = 0  # stream bytes consumed
        self.next = 0  # the first target not yet complete
        self.written = 0
        self.label: bytes | None = None
        self._label = bytearray()

    def feed(self, view: memoryview | None, length: int) -> None:
        """The next `length` bytes of the stream (None: a part not read, holding only data
        of skipped targets)."""
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
        if t.path == LABEL:
            self._label += piece
            return
        if not t.incremental:
            self._write_whole(t, piece, at)
            return
        while len(piece):
            if t.header is None:
                take = min(len(piece), self._header_want(t) - len(t.head))
                t.head += piece[:take]
                piece, at = piece[take:], at + take
                if len(t.head) == self._header_want(t) and len(t.head) > 8:
                    self._apply_header(t)
                continue
            h = t.header
            i, within = divmod(at - h.length, self.block_size)
            n = min(len(piece), t.runs[i] * self.block_size - within)  # blocks alike at once
            if t.use[i]:
                self._put(t, piece[:n], h.blocks[i] * self.block_size + within)
            piece, at = piece[n:], at + n

    def _write_whole(self, t: _Target, piece: memoryview, at: int) -> None:
        """A whole file's bytes at `at`: all of them, or (a newer link changed blocks of
        it) only the ranges it still supplies."""
        if t.ranges is None:
            if not self.claims.claimed(t.path):
                self._put(t, piece, at)
                return
            t.ranges = self.claims.whole_ranges(t.path, t.member.size)
        for x, y in t.ranges:
            lo, hi = max(x, at), min(y, at + len(piece))
            if lo < hi:
                self._put(t, piece[lo - at : hi - at], lo)

    def _put(self, t: _Target, piece: memoryview, at: int) -> None:
        os.pwrite(self._fd(t), piece, at)
        t.dirty += len(piece)
        self.written += len(piece)

    def _damaged(self, t: _Target, why: object) -> IntegrityError:
        return IntegrityError(
            f"incremental file {t.member.name!r} of backup {self.backup_id} is damaged ({why}); "
            f"refusing to restore"
        )

    def _header_want(self, t: _Target) -> int:
        """How many header bytes to collect: 8 to learn the block count, then all of it."""
        if len(t.head) < 8:
            return 8
        if t.want:
            return t.want
        try:
            raw = needed_header_bytes(bytes(t.head[:8]))
        except IncrementalFormatError as exc:
            raise self._damaged(t, exc) from exc
        if raw > 12 and raw % self.block_size:
            raw += self.block_size - raw % self.block_size
        t.want = raw
        return raw

    def _apply_header(self, t: _Target) -> None:
        """The header is whole: which of its blocks this link supplies. The newest version
        of a file creates it at its length and supplies them all."""
        try:
            h = parse_header(bytes(t.head), block_size=self.block_size, member_size=t.member.size)
        except IncrementalFormatError as exc:
            raise self._damaged(t, exc) from exc
        t.header = h
        if self.claims.claimed(t.path):
            t.use = self.claims.older(t.path, h)
        else:
            self.claims.newest(t.path, h)
            t.use = [True] * len(h.blocks)
            if h.blocks:  # else made, at its length, by the link that writes its data
                os.ftruncate(self._fd(t), h.file_blocks * self.block_size)
        t.runs = [1] * len(h.blocks)
        for i in range(len(h.blocks) - 2, -1, -1):
            if t.use[i] == t.use[i + 1] and (not t.use[i] or h.blocks[i + 1] == h.blocks[i] + 1):
                t.runs[i] = t.runs[i + 1] + 1

    def _fd(self, t: _Target) -> int:
        """Open when the first bytes come (created by the newest link that writes it; an
        older one opens it as it is, never emptied)."""
        if t.fd < 0:
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            dirfd = self.dirs.get(t.path[:-1])
            try:
                t.fd = os.open(t.path[-1], flags, t.member.mode & 0o777 or 0o600, dir_fd=dirfd)
            except OSError as exc:
                raise IntegrityError(f"cannot restore {t.member.name!r}: {exc.strerror}; refusing") from exc
        return t.fd

    def _done(self, t: _Target) -> None:
        if t.path == LABEL:
            self.label = bytes(self._label)
            return
        if t.skip:
            return
        if t.incremental and t.header is None:
            raise self._damaged(t, f"{t.member.size} bytes, shorter than its header")
        if not t.incremental:
            fd = self._fd(t)  # (an empty file, or no range of it supplied: opened only here)
            length = self.claims.length(t.path) if self.claims.claimed(t.path) else t.member.size
            if os.fstat(fd).st_size != length:
                os.ftruncate(fd, length)
        if t.fd >= 0:
            if t.dirty >= WRITEBACK_FROM:
                start_writeback(t.fd, 0, 0)  # the disk works meanwhile (once per file)
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


def fetched_parts(repo: Repository, links: list[Link]) -> Generator[tuple[StoredFile, bytes | None]]:
    """Each part of each link in turn, as stored, checked against its SHA-256 when needed (the
    next DECODE_AHEAD fetched and checked while this one is decoded and written, across links
    too); None for the others, which are not read."""
    order = [
        (link.directory, part, need)
        for link in links
        for part, need in zip(link.parts, link.needed, strict=True)
    ]

    def load(directory: str, part: StoredFile) -> bytes:
        return get_checked(repo, directory, part, what="backup file")

    wanted = [i for i, (_, _, need) in enumerate(order) if need]
    with ThreadPoolExecutor(max_workers=DECODE_AHEAD, thread_name_prefix="overlay") as pool:
        futures: dict[int, Future[bytes]] = {}

        def schedule(nth: int) -> None:
            if nth < len(wanted):
                directory, part, _ = order[wanted[nth]]
                futures[wanted[nth]] = pool.submit(load, directory, part)

        for nth in range(DECODE_AHEAD):
            schedule(nth)
        nth = DECODE_AHEAD - 1
        try:
            for i, (_, part, need) in enumerate(order):
                if not need:
                    yield part, None
                    continue
                nth += 1
                schedule(nth)
                yield part, futures.pop(i).result()
        finally:
            for f in futures.values():
                f.cancel()
