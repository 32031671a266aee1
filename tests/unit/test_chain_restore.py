"""A chain restored into a data directory: the full backup, then each incremental; what a
later link replaces whole is written once (its earlier copies are not even read); a damaged
link stops the restore there, naming it and the link to restore from instead."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.backup import Manifest
from drkit.domain.errors import IntegrityError
from drkit.engines.core.layout import backup_dir
from drkit.engines.postgres.chain_restore import extract_chain
from drkit.engines.postgres.tar_restore import read_index
from tests.unit.chain_helpers import BS, incremental, store


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


def test_each_block_is_written_once_by_the_newest_link_that_holds_it(tmp_path: Path) -> None:
    """The full's blocks that incrementals replace are not written, nor read where a part holds
    nothing else; an older incremental's blocks a newer one replaces, or cuts, neither."""
    repo = FsRepository(tmp_path / "repo")
    rel = [bytes([i]) * BS for i in range(40)]
    full = store(repo, 0, {"base/5/16384": b"".join(rel), "PG_VERSION": b"15\n"}, None)
    day1 = store(
        repo, 1, {"base/5/INCREMENTAL.16384": incremental({b: b"1" * BS for b in range(10, 20)}, 40)}, full
    )
    day2 = store(
        repo, 2, {"base/5/INCREMENTAL.16384": incremental({b: b"2" * BS for b in range(15, 26)}, 40)}, day1
    )
    day3 = store(repo, 3, {"base/5/INCREMENTAL.16384": incremental({31: b"3" * BS}, 30)}, day2)  # cut at 30
    links = (full, day1, day2, day3)
    directory = backup_dir("demo", "postgres", full.backup_id)
    members = read_index(repo, Codec(), directory, full, "tarindex.json.zst")
    heap = next(x for x in members if x.name == "base/5/16384")
    lo, removed = 0, 0
    for part in (f for f in full.files if f.name.startswith("base.")):
        inside = heap.offset + 10 * BS <= lo and lo + part.raw_size <= heap.offset + 26 * BS
        cut = heap.offset + 30 * BS <= lo and lo + part.raw_size <= heap.offset + heap.size
        if inside or cut:
            (repo.root / directory / part.name).unlink()  # replaced or cut by every later link
            removed += 1
        lo += part.raw_size
    assert removed >= 20
    dest = tmp_path / "data"
    written = extract_chain(repo, Codec(), "demo", "postgres", links, dest, parallel=2)
    expected = [*rel[:10], *[b"1" * BS] * 5, *[b"2" * BS] * 11, *rel[26:30], bytes(BS), b"3" * BS]
    assert (dest / "base/5/16384").read_bytes() == b"".join(expected)
    assert written == 31 * BS  # blocks 0-29 and 31, each once; nothing for block 30 (zeros)


def _sequential(links: list[dict[str, bytes | tuple[dict[int, bytes], int]]]) -> dict[str, bytes]:
    """What applying each link in turn onto its parent's result gives (pg_combinebackup's
    result): the reference the newest-first restore must equal."""
    state: dict[str, bytearray] = {}
    for files in links:
        after: dict[str, bytearray] = {}
        for name, version in files.items():
            if isinstance(version, bytes):
                after[name] = bytearray(version)
                continue
            blocks, truncate = version
            data = state[name][: truncate * BS]
            length = max(truncate, max(blocks, default=-1) + 1) * BS
            data += bytes(length - len(data))
            for b, content in blocks.items():
                data[b * BS : (b + 1) * BS] = content
            after[name] = data
        state = after
    return {name: bytes(data) for name, data in state.items()}


@pytest.mark.parametrize("seed", range(12))
def test_a_random_chain_restores_as_its_links_applied_in_turn(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    names = [f"base/5/{16384 + i}" for i in range(5)]
    links: list[dict[str, bytes | tuple[dict[int, bytes], int]]] = []
    for day in range(rng.randint(2, 6)):
        files: dict[str, bytes | tuple[dict[int, bytes], int]] = {}
        for name in names:
            held = day > 0 and name in links[-1]
            kind = rng.choice(["incr", "incr", "incr", "whole", "gone"] if held else ["whole", "gone"])
            if kind == "whole":
                files[name] = b"".join(rng.randbytes(BS) for _ in range(rng.randint(0, 12)))
            elif kind == "incr":
                blocks = {b: rng.randbytes(BS) for b in sorted(rng.sample(range(16), rng.randint(0, 6)))}
                files[name] = (blocks, rng.randint(0, 14))
        links.append(files)
    repo = FsRepository(tmp_path / "repo")
    stored: list[Manifest] = []
    for day, files in enumerate(links):
        entries = {
            (name if isinstance(v, bytes) else name.replace("/1", "/INCREMENTAL.1", 1)): (
                v if isinstance(v, bytes) else incremental(*v)
            )
            for name, v in files.items()
        }
        stored.append(store(repo, day, entries, stored[-1] if stored else None))
    dest = tmp_path / "data"
    extract_chain(repo, Codec(), "demo", "postgres", tuple(stored), dest, parallel=2)
    expected = _sequential(links)
    restored = {name: (dest / name).read_bytes() for name in names if (dest / name).exists()}
    assert restored == expected
