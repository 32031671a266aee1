"""A chain restored into a data directory: the full backup, then each incremental; what a
later link replaces whole is written once (its earlier copies are not even read); a damaged
link stops the restore there, naming it and the link to restore from instead."""

from __future__ import annotations

import io
import random
import tarfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.adapters.postgres.incremental_file import IncrementalHeader
from drkit.adapters.postgres.tarindex import TarIndexer, members_to_json
from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.backup import BackupKind, Manifest, PostgresInfo, StoredFile
from drkit.domain.errors import IntegrityError
from drkit.engines.core.layout import backup_dir
from drkit.engines.postgres.chain_restore import extract_chain
from drkit.engines.postgres.tar_restore import read_index
from drkit.infra.parts import split_into_parts

BS = 8192
T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def label(start: int, parent_start: int | None) -> bytes:
    text = f"START WAL LOCATION: 0/{start:X} (file 000000010000000000000001)\nSTART TIMELINE: 1\n"
    if parent_start is not None:
        text += f"INCREMENTAL FROM LSN: 0/{parent_start:X}\nINCREMENTAL FROM TLI: 1\n"
    return text.encode()


def store(repo: FsRepository, day: int, files: dict[str, bytes], parent: Manifest | None) -> Manifest:
    """A base backup as drkit stores one: parts, tar index, manifest."""
    backup_id = f"2026112{2 + day}T020000Z-{'incr' if parent else 'base'}"
    directory = backup_dir("demo", "postgres", backup_id)
    codec, indexer = Codec(), TarIndexer()

    def sink(index: int, raw: bytes) -> StoredFile:
        stored = codec.encode(raw)
        name = f"base.{index:05d}.tar.zst"
        repo.put(f"{directory}/{name}", stored, overwrite=False)
        return StoredFile(name, len(stored), sha256(stored), len(raw))

    start = 0x1000028 * (day + 1)
    stream = tar_of(
        {"backup_label": label(start, parent and int(parent.require_postgres().start_lsn[2:], 16)), **files}
    )
    parts, _ = split_into_parts(io.BytesIO(stream).read, sink, part_size=BS, parallel=2, observe=indexer.feed)
    raw_index = members_to_json(indexer.members)
    index = codec.encode(raw_index)
    repo.put(f"{directory}/tarindex.json.zst", index)
    files_ = (*parts, StoredFile("tarindex.json.zst", len(index), sha256(index), len(raw_index)))
    pg = PostgresInfo(f"0/{start:X}", f"0/{start + 0x100:X}", 1, 16 << 20, 150000, "7001")
    if parent is not None:
        pp = parent.require_postgres()
        pg = replace(pg, incremental="delta", parent=parent.backup_id, chain=(*pp.chain, parent.backup_id))
    at = T0 + timedelta(days=day)
    return Manifest(backup_id, "demo", "postgres", BackupKind.BASE, at, at, files_, {}, postgres=pg)


def incremental(blocks: dict[int, bytes], truncate: int) -> bytes:
    return IncrementalHeader(tuple(blocks), truncate, BS).encode() + b"".join(blocks.values())


@pytest.fixture
def chain(tmp_path: Path) -> tuple[FsRepository, tuple[Manifest, ...], dict[str, bytes]]:
    rng = random.Random(5)
    repo = FsRepository(tmp_path / "repo")
    heap = [rng.randbytes(BS) for _ in range(4)]
    fsm = [rng.randbytes(20 * BS) for _ in range(3)]  # rewritten whole every day
    full = store(
        repo, 0, {"base/5/16384": b"".join(heap), "base/5/16384_fsm": fsm[0], "PG_VERSION": b"15\n"}, None
    )

    def day(n: int, block: int, parent: Manifest) -> Manifest:
        heap_change = incremental({block: str(block).encode() * BS}, 4)
        files = {"base/5/INCREMENTAL.16384": heap_change, "base/5/16384_fsm": fsm[n], "PG_VERSION": b"15\n"}
        return store(repo, n, files, parent)

    day1 = day(1, 1, full)
    day2 = day(2, 3, day1)
    expected = {
        "base/5/16384": heap[0] + b"1" * BS + heap[2] + b"3" * BS,
        "base/5/16384_fsm": fsm[2],
        "PG_VERSION": b"15\n",
    }
    return repo, (full, day1, day2), expected


def test_a_chain_restores_to_its_newest_state(chain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, links, expected = chain
    dest = tmp_path / "data"
    extract_chain(repo, Codec(), "demo", "postgres", links, dest, parallel=2)
    for name, data in expected.items():
        assert (dest / name).read_bytes() == data, name
    assert b"INCREMENTAL" not in (dest / "backup_label").read_bytes()


def test_what_a_later_link_replaces_whole_is_never_read(chain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Parts holding only the older copies of the free space map are gone: nothing reads them."""
    repo, links, expected = chain
    removed = 0
    for m in links[:2]:
        directory = backup_dir("demo", "postgres", m.backup_id)
        members = read_index(repo, Codec(), directory, m, "tarindex.json.zst")
        fsm = next(x for x in members if x.name == "base/5/16384_fsm")
        lo = 0
        for part in (f for f in m.files if f.name.startswith("base.")):
            if fsm.offset <= lo and lo + part.raw_size <= fsm.offset + fsm.size:
                (repo.root / directory / part.name).unlink()
                removed += 1
            lo += part.raw_size
    assert removed >= 30
    dest = tmp_path / "data"
    extract_chain(repo, Codec(), "demo", "postgres", links, dest, parallel=2)
    assert (dest / "base/5/16384_fsm").read_bytes() == expected["base/5/16384_fsm"]


def test_a_damaged_link_stops_the_restore_there_naming_it(chain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, links, _expected = chain
    directory = repo.root / backup_dir("demo", "postgres", links[1].backup_id)
    first = directory / "base.00000.tar.zst"
    first.write_bytes(first.read_bytes()[:-1] + b"x")
    with pytest.raises(IntegrityError) as failed:
        extract_chain(repo, Codec(), "demo", "postgres", links, tmp_path / "data", parallel=2)
    assert f"stopped at {links[1].backup_id} (incremental 1 of 2" in failed.value.message
    assert links[0].backup_id in (failed.value.hint or "")


def test_extraction_uses_a_thread_per_core_within_the_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from drkit.engines.postgres.chain_restore import MAX_WORKERS, restore_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(4)))
    assert restore_workers(2) == 4  # the policy's 2 (sized for backups) is not a cap
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)))
    assert restore_workers(2) == MAX_WORKERS  # each holds a part: memory stays bounded
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert restore_workers(2) == 2
