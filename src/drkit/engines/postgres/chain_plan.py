"""Which link of a chain supplies each file, and each block, of the restored data directory.

A chain is restored newest link first, so that every block is written once, by the newest
link that holds it, the way pg_combinebackup's reconstruct.c chooses its sources:

- the files restored are those the newest link lists (every link lists every file: an
  unchanged relation file as an `INCREMENTAL` file of no blocks);
- a file's newest version is in the newest link; going back through the chain, its
  incremental versions follow until the first whole one (in an incremental, or the full
  backup); older links do not supply it at all (`FilePlan`);
- the newest incremental version sets the file's length; each incremental version, newest
  first, supplies the blocks it holds that no newer version holds, below every newer
  version's truncation point (a newer version cut the file there, and the blocks beyond
  come from nowhere before it: zeros); the whole version supplies the rest, below the same
  point (`Claims`).

Which links supply which files is decided from the tar indexes alone; the blocks, from each
incremental file's header as its link streams, newest link first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drkit.adapters.postgres.incremental_file import PREFIX, IncrementalHeader
from drkit.adapters.postgres.tarindex import Member
from drkit.domain.errors import IntegrityError
from drkit.engines.postgres.tar_restore import member_path

Path_ = tuple[str, ...]
LABEL: Path_ = ("backup_label",)
NOT_RESTORED = frozenset({("backup_manifest",)})  # an incremental's manifest: not the restored whole


def target_path(m: Member) -> tuple[Path_, bool]:
    """The path a member of an incremental backup writes, and whether it is an incremental file."""
    parts = member_path(m)
    if m.type == "file" and parts[-1].startswith(PREFIX) and len(parts[-1]) > len(PREFIX):
        return (*parts[:-1], parts[-1][len(PREFIX) :]), True
    return parts, False


@dataclass(frozen=True)
class FilePlan:
    """Per link (full first), the files it supplies; the directories the newest link lists."""

    used: tuple[frozenset[Path_], ...]
    dirs: frozenset[Path_]


def plan_files(indexes: list[list[Member]], backup_ids: list[str]) -> FilePlan:
    """Which link supplies which file (the members checked: check_members). LinkError for a
    link holding a file and its incremental file, or an incremental file whose parent link
    does not list the file it changes."""
    listed: list[dict[Path_, bool]] = []  # per link: path -> is an incremental version
    for k, members in enumerate(indexes):
        files: dict[Path_, bool] = {}
        for m in members:
            if m.type == "file":
                path, incremental = target_path(m) if k else (member_path(m), False)
                if path in files:
                    raise LinkError(
                        f"incremental backup {backup_ids[k]} holds both {'/'.join(path)!r} and its "
                        f"incremental file; refusing to restore", link=k,
                    )  # fmt: skip
                files[path] = incremental
        listed.append(files)
    newest = len(indexes) - 1
    used: list[set[Path_]] = [set() for _ in indexes]
    for path in listed[newest]:
        if path in NOT_RESTORED:
            continue
        k = newest
        while True:
            used[k].add(path)
            if not listed[k][path]:
                break  # the whole version: older links do not supply this file
            if path not in listed[k - 1]:
                raise LinkError(
                    f"incremental backup {backup_ids[k]} changes {'/'.join(path)}, which its parent "
                    f"does not hold; refusing to restore", link=k,
                )  # fmt: skip
            k -= 1
    dirs = {member_path(m) for m in indexes[newest] if m.type == "dir"}
    for path in listed[newest]:
        dirs.update(path[:i] for i in range(1, len(path)))
    return FilePlan(tuple(frozenset(u) for u in used), frozenset(dirs))


class LinkError(IntegrityError):
    """What makes a link of the chain unusable, found from the tar indexes; `link`: its position."""

    def __init__(self, message: str, *, link: int = -1, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.link = link


@dataclass
class _Claim:
    blocks: int  # the file's length in blocks (its newest version's)
    limit: int  # older versions supply only blocks below this (the newer versions' truncation)
    taken: bytearray | None = None  # one byte per block: 1 once a newer version supplied it

    def mark(self, block: int) -> None:
        if self.taken is None:
            self.taken = bytearray(self.blocks)
        self.taken[block] = 1


@dataclass
class Claims:
    """The blocks of each file already supplied by a newer link (a byte per block of a file
    that changed, allocated at its first change: 128 KiB per 1 GiB segment)."""

    block_size: int
    files: dict[Path_, _Claim] = field(default_factory=dict)

    def newest(self, path: Path_, h: IncrementalHeader) -> None:
        """The newest version of `path` is incremental: it sets the length and supplies all
        its blocks."""
        claim = self.files[path] = _Claim(h.file_blocks, h.truncate)
        for b in h.blocks:
            claim.mark(b)

    def older(self, path: Path_, h: IncrementalHeader) -> list[bool]:
        """An older incremental version: per block it holds, whether it supplies it."""
        claim = self.files[path]
        taken, limit = claim.taken, claim.limit
        use = [b < limit and (taken is None or not taken[b]) for b in h.blocks]
        for b, u in zip(h.blocks, use, strict=True):
            if u:
                claim.mark(b)
        claim.limit = min(limit, h.truncate)
        return use

    def claimed(self, path: Path_) -> bool:
        return path in self.files

    def length(self, path: Path_) -> int:
        """The file's length in bytes, as its newest version says."""
        return self.files[path].blocks * self.block_size

    def whole_ranges(self, path: Path_, size: int) -> list[tuple[int, int]]:
        """The byte ranges of a whole version of `path` (`size` bytes) it supplies: the
        blocks no newer version supplied, below their truncation point."""
        claim = self.files[path]
        bs = self.block_size
        end = min(size, claim.limit * bs)
        if claim.taken is None:
            return [(0, end)] if end > 0 else []
        taken, limit = claim.taken, min(claim.limit, -(-end // bs))
        out: list[tuple[int, int]] = []
        b = 0
        while b < limit:
            lo = taken.find(0, b, limit)
            if lo < 0:
                break
            hi = taken.find(1, lo, limit)
            hi = limit if hi < 0 else hi
            out.append((lo * bs, min(hi * bs, end)))
            b = hi
        return out
