"""An incremental backup applied, as stored, on the full backup it was taken from (a chain
of two, restored newest link first): whole files replaced, INCREMENTAL files cut, extended
and patched block by block, what it does not list left out; damaged or hostile incremental
files refused by name."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.backup import Manifest
from drkit.domain.errors import IntegrityError
from drkit.engines.postgres.chain_restore import extract_chain
from tests.unit.chain_helpers import BS, Entries, block, incremental, label, store


@pytest.fixture
def restored(tmp_path: Path) -> tuple[FsRepository, Manifest]:
    """A full backup (8-block relation, files to keep, replace and drop)."""
    repo = FsRepository(tmp_path / "repo")
    full = store(
        repo,
        0,
        [
            ("base", None),
            ("base/5", None),
            ("base/5/16384", b"".join(block(i) for i in range(8))),
            ("base/5/16390", b"".join(block(100 + i) for i in range(3))),
            ("base/5/dropped", b"gone"),
            ("base/6", None),
            ("base/6/1", b"a dropped database"),
            ("PG_VERSION", b"15\n"),
        ],
        None,
        part_size=20_000,
    )
    return repo, full


def apply(restored: tuple[FsRepository, Manifest], entries: Entries) -> Path:
    repo, full = restored
    incr = store(repo, 1, entries, full, part_size=20_000)
    dest = repo.root.parent / "data"
    extract_chain(repo, Codec(), "demo", "postgres", (full, incr), dest, parallel=2)
    return dest


def test_an_incremental_patches_cuts_extends_replaces_and_removes(
    restored: tuple[FsRepository, Manifest],
) -> None:
    dest = apply(
        restored,
        [
            ("base", None),
            ("base/5", None),
            # cut to 4 blocks, then 6 long: block 1 and 5 new, block 4 zeros
            ("base/5/INCREMENTAL.16384", incremental({1: block(201), 5: block(205)}, truncate=4)),
            ("base/5/INCREMENTAL.16390", incremental({}, truncate=3)),  # unchanged
            ("base/5/16400", b"a new relation"),
            ("base/7", None),
            ("base/7/1", b"a new database"),
            ("PG_VERSION", b"16\n"),  # whole files replace
        ],
    )
    data = (dest / "base/5/16384").read_bytes()
    assert [data[i * BS] for i in range(len(data) // BS)] == [0, 201, 2, 3, 0, 205]
    assert (dest / "base/5/16390").read_bytes() == b"".join(block(100 + i) for i in range(3))
    assert (dest / "base/5/16400").read_bytes() == b"a new relation"
    assert (dest / "base/7/1").read_bytes() == b"a new database"
    assert (dest / "PG_VERSION").read_bytes() == b"16\n"
    assert not (dest / "base/5/dropped").exists() and not (dest / "base/6").exists()
    assert not (dest / "base/5/INCREMENTAL.16384").exists()
    assert (dest / "backup_label").read_bytes() == label(0x1000028 * 2, None)  # its own, whole


def test_many_blocks_straddling_parts_land_where_their_header_says(
    restored: tuple[FsRepository, Manifest],
) -> None:
    rng = random.Random(3)
    picked = sorted(rng.sample(range(40), 17))
    blocks = {b: rng.randbytes(BS) for b in picked}
    dest = apply(restored, [("base/5/INCREMENTAL.16384", incremental(blocks, truncate=8))])
    data = (dest / "base/5/16384").read_bytes()
    assert len(data) == max(8, picked[-1] + 1) * BS
    for b in range(len(data) // BS):
        expected = blocks.get(b, block(b) if b < 8 else bytes(BS))
        assert data[b * BS : (b + 1) * BS] == expected, b


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (("base/5/INCREMENTAL.16384", incremental({1: block(1)}, 8)[:-1]), "damaged"),  # size off
        (("base/5/INCREMENTAL.16384", b"\x00" * 12), "bad magic number"),
        (("base/5/INCREMENTAL.99999", incremental({0: block(1)}, 1)), "its parent does not hold"),
        (("../outside", b"x"), "unsafe path"),
    ],
)
def test_a_damaged_or_hostile_incremental_is_refused_by_name(
    restored: tuple[FsRepository, Manifest], entry: tuple[str, bytes], match: str
) -> None:
    with pytest.raises(IntegrityError, match=match) as failed:
        apply(restored, [("base", None), ("base/5", None), ("base/5/16390", b"x"), entry])
    assert "(incremental 1 of 1 in its chain)" in failed.value.message


def test_both_a_file_and_its_incremental_file_is_refused(restored: tuple[FsRepository, Manifest]) -> None:
    with pytest.raises(IntegrityError, match="holds both"):
        apply(restored, [("base/5/16384", b"x"), ("base/5/INCREMENTAL.16384", incremental({}, 8))])
