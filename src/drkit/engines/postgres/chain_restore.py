"""Restore a chain of base backups into a new data directory: the full backup extracted in
parallel (tar_restore.py), then each incremental applied where it lies (overlay.py), oldest
first. Each incremental's backup_label must name its parent's start as the point it was taken
from; the restored label drops those lines (the server refuses a data directory that still
has them) and the last incremental's backup_manifest, which lists INCREMENTAL files, goes.

A damaged link stops the restore there, naming the link: nothing after it is applied.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from drkit.adapters.postgres.incremental_file import incremental_from, plain_label
from drkit.adapters.postgres.tarindex import Member
from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.port import Repository
from drkit.domain.backup import Manifest
from drkit.domain.errors import DrkitError, IntegrityError
from drkit.domain.wal import Lsn
from drkit.engines.core.layout import backup_dir
from drkit.engines.postgres.backup import TAR_INDEX
from drkit.engines.postgres.overlay import apply_incremental, target_path
from drkit.engines.postgres.tar_restore import member_path, read_index, restore_parts

DEFAULT_BLOCK_SIZE = 8192
MAX_WORKERS = 6  # each holds a part (16 MiB) and a piece buffer: peak memory stays < 200 MB


def restore_workers(configured: int) -> int:
    """Extraction threads: one per usable core (zstd, hashing and writes release the GIL),
    at least what the policy says, at most MAX_WORKERS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2
    return max(1, min(max(configured, cores), MAX_WORKERS))


def block_size(m: Manifest) -> int:
    return int(m.details.get("block_size", DEFAULT_BLOCK_SIZE))


def extract_chain(
    repo: Repository,
    codec: Codec,
    stack: str,
    service: str,
    chain: tuple[Manifest, ...],
    dest: Path,
    *,
    parallel: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the data directory `chain` (full first) restores into `dest` (must not exist);
    the bytes of data written."""
    done = 0

    def step(base: int) -> Callable[[int], None] | None:
        return None if progress is None else (lambda n: progress(base + n))

    written = 0
    indexes = [_index(repo, codec, stack, service, m, chain) for m in chain]
    superseded = _superseded(indexes)
    for k, (m, members) in enumerate(zip(chain, indexes, strict=True)):
        directory = backup_dir(stack, service, m.backup_id)
        parts = [f for f in m.files if f.name.startswith("base.")]
        try:
            if k == 0:
                skip = frozenset("/".join(p) for p in superseded[0])
                written += restore_parts(
                    repo, codec, directory, parts, members, dest, parallel=parallel, progress=step(done),
                    superseded=skip,
                )  # fmt: skip
            else:
                written += apply_incremental(
                    repo, codec, directory, parts, members, dest, block_size=block_size(m),
                    backup_id=m.backup_id, progress=step(done), superseded=frozenset(superseded[k]),
                )  # fmt: skip
                _check_label(dest, m, chain[k - 1])
        except DrkitError as exc:
            if len(chain) == 1:
                raise
            raise _at_link(exc, chain, m) from exc
        done += m.raw_bytes
    if len(chain) > 1:
        _finish(dest)
    return written


def _index(
    repo: Repository, codec: Codec, stack: str, service: str, m: Manifest, chain: tuple[Manifest, ...]
) -> list[Member]:
    try:
        return read_index(repo, codec, backup_dir(stack, service, m.backup_id), m, TAR_INDEX + codec.suffix)
    except DrkitError as exc:
        if len(chain) == 1:
            raise
        raise _at_link(exc, chain, m) from exc


def _superseded(indexes: list[list[Member]]) -> list[set[tuple[str, ...]]]:
    """Per link, the files not worth writing: a later link stores them whole, or the last
    link no longer lists them (removed). Newest wins: a file rewritten every day is written
    once. backup_label always (each link's is checked against its parent)."""
    last_whole: dict[tuple[str, ...], int] = {}
    listed: list[list[tuple[tuple[str, ...], bool]]] = []
    for k, members in enumerate(indexes):
        files = [target_path(x) if k else (member_path(x), False) for x in members if x.type == "file"]
        listed.append(files)
        for path, incremental in files:
            if not incremental:
                last_whole[path] = k
    final = {path for path, _ in listed[-1]}
    out = []
    for k, files in enumerate(listed):
        out.append(
            {p for p, _ in files if p != ("backup_label",) and (p not in final or last_whole.get(p, 0) > k)}
        )
    return out


def _at_link(exc: DrkitError, chain: tuple[Manifest, ...], m: Manifest) -> DrkitError:
    position = chain.index(m)
    where = "its full backup" if position == 0 else f"incremental {position} of {len(chain) - 1}"
    before = (
        f"; restore --backup {chain[position - 1].backup_id} (and the WAL after it) instead"
        if position
        else ""
    )
    return type(exc)(
        f"restoring {chain[-1].backup_id} stopped at {m.backup_id} ({where} in its chain): {exc.message}",
        hint=((exc.hint or "") + before) or None,
    )


def _read_label(dest: Path) -> bytes:
    fd = os.open(dest / "backup_label", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


def _check_label(dest: Path, m: Manifest, parent: Manifest) -> None:
    """The incremental was taken from the parent restored under it (its label says so)."""
    try:
        label = _read_label(dest)
    except FileNotFoundError as exc:
        raise IntegrityError(f"incremental backup {m.backup_id} holds no backup_label") from exc
    found = incremental_from(label)
    expected = parent.require_postgres().start_lsn
    if found is None or Lsn.parse(found) != Lsn.parse(expected):
        raise IntegrityError(
            f"the backup_label of {m.backup_id} says it is incremental from {found or 'nothing'}, "
            f"but its parent {parent.backup_id} starts at {expected}; refusing to restore"
        )


def _finish(dest: Path) -> None:
    """The label of a whole data directory; no manifest of an incremental backup."""
    label = plain_label(_read_label(dest))
    flags = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(dest / "backup_label", flags)
    try:
        os.write(fd, label)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest / "backup_manifest")
