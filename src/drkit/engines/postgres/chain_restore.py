"""Restore a chain of base backups into a new data directory, each block written once: the
incrementals newest first (overlay.py), then the full backup, in parallel (tar_restore.py),
each supplying only what no newer link holds (chain_plan.py decides, as pg_combinebackup
does). Each incremental's backup_label must name its parent's start as the point it was
taken from; the restored label is the newest link's without those lines (the server refuses
a data directory that still has them), and no link's backup_manifest is restored.

A damaged link stops the restore there, naming the link and the link before it to restore
from instead.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from drkit.adapters.postgres.incremental_file import incremental_from, plain_label
from drkit.adapters.postgres.tarindex import Member
from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.port import Repository
from drkit.domain.backup import Manifest, StoredFile
from drkit.domain.errors import DrkitError, IntegrityError
from drkit.domain.wal import Lsn
from drkit.engines.core.layout import backup_dir
from drkit.engines.postgres.backup import TAR_INDEX
from drkit.engines.postgres.chain_plan import LABEL, Claims, FilePlan, LinkError, plan_files, target_path
from drkit.engines.postgres.overlay import Link, apply_incremental, fetched_parts, prepare_link
from drkit.engines.postgres.tar_restore import (
    OpenDirs,
    check_members,
    local_failures,
    make_dest,
    member_path,
    read_index,
    restore_files_into,
    restore_parts,
)

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
    indexes = [_index(repo, codec, stack, service, m, chain) for m in chain]
    if len(chain) == 1:
        parts = [f for f in chain[0].files if f.name.startswith("base.")]
        directory = backup_dir(stack, service, chain[0].backup_id)
        return restore_parts(
            repo, codec, directory, parts, indexes[0], dest, parallel=parallel, progress=progress
        )
    for m, members in zip(chain, indexes, strict=True):
        try:
            check_members(members)  # only files and directories, safe names, each once
        except DrkitError as exc:
            raise _at_link(exc, chain, m) from exc
    try:
        plan = plan_files(indexes, [m.backup_id for m in chain])
    except LinkError as exc:
        raise _at_link(exc, chain, chain[exc.link]) from exc
    root = make_dest(dest)
    try:
        with local_failures(dest):
            return _extract_into(repo, codec, stack, service, chain, indexes, plan, root, parallel, progress)
    finally:
        os.close(root)


def _extract_into(
    repo: Repository,
    codec: Codec,
    stack: str,
    service: str,
    chain: tuple[Manifest, ...],
    indexes: list[list[Member]],
    plan: FilePlan,
    root: int,
    parallel: int,
    progress: Callable[[int], None] | None,
) -> int:
    _make_dirs(root, indexes[-1], plan)
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="create") as creator:
        creator.submit(_create_files, root, _creation_order(indexes, plan), stop)
        try:
            return _write_links(repo, codec, stack, service, chain, indexes, plan, root, parallel, progress)
        finally:
            stop.set()


def _write_links(
    repo: Repository,
    codec: Codec,
    stack: str,
    service: str,
    chain: tuple[Manifest, ...],
    indexes: list[list[Member]],
    plan: FilePlan,
    root: int,
    parallel: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Each link, newest first, writing what it supplies."""
    claims = Claims(block_size(chain[-1]))
    done, written, newest_label = 0, 0, b""

    def step(base: int) -> Callable[[int], None] | None:
        return None if progress is None else (lambda n: progress(base + n))

    links: list[Link] = []
    for k in range(len(chain) - 1, 0, -1):
        m = chain[k]
        try:
            links.append(
                prepare_link(m.backup_id, _dir(stack, service, m), _parts(m), indexes[k], plan.used[k])
            )
        except DrkitError as exc:
            raise _at_link(exc, chain, m) from exc
    with contextlib.closing(fetched_parts(repo, links)) as decoded:
        for k, link in zip(range(len(chain) - 1, 0, -1), links, strict=True):
            m = chain[k]
            try:
                applied = apply_incremental(
                    link, decoded, codec, root, block_size=block_size(m), claims=claims, progress=step(done)
                )
                _check_label(applied.label, m, chain[k - 1])
            except DrkitError as exc:
                raise _at_link(exc, chain, m) from exc
            newest_label = newest_label or applied.label or b""
            written += applied.written
            done += m.raw_bytes
    full = chain[0]
    try:
        written += _restore_full(
            repo, codec, _dir(stack, service, full), _parts(full), indexes[0], root, plan, claims, parallel,
            step(done),
        )  # fmt: skip
    except DrkitError as exc:
        raise _at_link(exc, chain, full) from exc
    _write_label(root, plain_label(newest_label))
    return written


def _dir(stack: str, service: str, m: Manifest) -> str:
    return backup_dir(stack, service, m.backup_id)


def _parts(m: Manifest) -> list[StoredFile]:
    return [f for f in m.files if f.name.startswith("base.")]


def _creation_order(indexes: list[list[Member]], plan: FilePlan) -> list[tuple[tuple[str, ...], int]]:
    """Every file restored, with its mode, in about the order the writers first need it: the
    newest link's that it writes data into, in stream order, then the next link's, and so
    on; the full backup's last."""
    order: dict[tuple[str, ...], int] = {}
    for k in range(len(indexes) - 1, -1, -1):
        for m in sorted((x for x in indexes[k] if x.type == "file"), key=lambda x: x.offset):
            path, incremental = target_path(m) if k else (member_path(m), False)
            if path in plan.used[k] and path != LABEL and (not incremental or m.size > HEADER_ONLY):
                order.setdefault(path, m.mode & 0o777 or 0o600)
    return list(order.items())


def _create_files(root: int, order: list[tuple[tuple[str, ...], int]], stop: threading.Event) -> None:
    """Create the files ahead of the writers, in a thread of their own: creating a file costs
    about a millisecond on ext4, opening one that exists microseconds, and the writers of the
    incrementals work one at a time. A writer that gets to a file first creates it itself;
    nothing is written here, so a failure here only leaves the work to the writers."""
    dirs = OpenDirs(root, create=False)
    try:
        for path, mode in order:
            if stop.is_set():
                return
            os.close(os.open(path[-1], _CREATE, mode, dir_fd=dirs.get(path[:-1])))
    except OSError:
        return
    finally:
        dirs.close()


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
HEADER_ONLY = 12  # an INCREMENTAL file of no blocks (its header, unpadded)


def _make_dirs(root: int, newest: list[Member], plan: FilePlan) -> None:
    """Every directory the newest link lists, with its mode (the files are created as their
    first bytes come)."""
    modes = {member_path(m): m.mode & 0o777 or 0o700 for m in newest if m.type == "dir"}
    dirs = OpenDirs(root, create=True)
    try:
        for path in sorted(plan.dirs, key=len):
            fd = dirs.get(path)
            if path in modes:
                os.fchmod(fd, modes[path])
    finally:
        dirs.close()


def _restore_full(
    repo: Repository,
    codec: Codec,
    directory: str,
    parts: list[StoredFile],
    members: list[Member],
    root: int,
    plan: FilePlan,
    claims: Claims,
    parallel: int,
    progress: Callable[[int], None] | None,
) -> int:
    """The full backup's part: its files no incremental replaced whole, but for the blocks
    an incremental supplied."""
    files = {member_path(m): m for m in members if m.type == "file"}
    used = [files[p] for p in plan.used[0]]
    claimed = [(p, m) for p, m in zip(plan.used[0], used, strict=True) if claims.claimed(p)]
    return restore_files_into(
        repo, codec, directory, parts, members, root, parallel=parallel, progress=progress,
        wanted=frozenset(m.name for m in used),
        ranges={m.name: claims.whole_ranges(p, m.size) for p, m in claimed},
        lengths={m.name: claims.length(p) for p, m in claimed},
    )  # fmt: skip


def _index(
    repo: Repository, codec: Codec, stack: str, service: str, m: Manifest, chain: tuple[Manifest, ...]
) -> list[Member]:
    try:
        return read_index(repo, codec, backup_dir(stack, service, m.backup_id), m, TAR_INDEX + codec.suffix)
    except DrkitError as exc:
        if len(chain) == 1:
            raise
        raise _at_link(exc, chain, m) from exc


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


def _check_label(label: bytes | None, m: Manifest, parent: Manifest) -> None:
    """The incremental was taken from the parent restored under it (its label says so)."""
    if label is None:
        raise IntegrityError(f"incremental backup {m.backup_id} holds no backup_label")
    found = incremental_from(label)
    expected = parent.require_postgres().start_lsn
    if found is None or Lsn.parse(found) != Lsn.parse(expected):
        raise IntegrityError(
            f"the backup_label of {m.backup_id} says it is incremental from {found or 'nothing'}, "
            f"but its parent {parent.backup_id} starts at {expected}; refusing to restore"
        )


def _write_label(root: int, label: bytes) -> None:
    """The label of a whole data directory (the newest link's, its parent's lines dropped)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(LABEL[0], flags, 0o600, dir_fd=root)
    try:
        os.write(fd, label)
    finally:
        os.close(fd)
