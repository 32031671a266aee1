"""An incremental backup applied, as stored, onto the data directory its parent restored:
whole files replaced, INCREMENTAL files cut, extended and patched block by block, what it
does not list removed; damaged or hostile incremental files refused by name."""

from __future__ import annotations

import io
import random
import tarfile
from pathlib import Path

import pytest

from drkit.adapters.postgres.incremental_file import IncrementalHeader, incremental_from, plain_label
from drkit.adapters.postgres.tarindex import Member, TarIndexer
from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.backup import StoredFile
from drkit.domain.errors import IntegrityError
from drkit.engines.postgres.overlay import apply_incremental
from drkit.engines.postgres.tar_restore import restore_parts
from drkit.infra.parts import split_into_parts

BS = 8192
LABEL = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n"


def block(tag: int) -> bytes:
    return bytes([tag % 256]) * BS


def tar_of(entries: list[tuple[str, bytes | None]]) -> bytes:
    """(name, data) in order; data None: a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o700
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o600
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def store(repo: FsRepository, directory: str, stream: bytes) -> tuple[list[StoredFile], list[Member]]:
    codec = Codec()
    indexer = TarIndexer()

    def sink(index: int, raw: bytes) -> StoredFile:
        stored = codec.encode(raw)
        name = f"base.{index:05d}.tar.zst"
        repo.put(f"{directory}/{name}", stored, overwrite=False)
        return StoredFile(name, len(stored), sha256(stored), len(raw))

    parts, _ = split_into_parts(
        io.BytesIO(stream).read, sink, part_size=20_000, parallel=2, observe=indexer.feed
    )
    return parts, indexer.members


def incremental(blocks: dict[int, bytes], truncate: int) -> bytes:
    header = IncrementalHeader(tuple(blocks), truncate, BS)
    return header.encode() + b"".join(blocks.values())


@pytest.fixture
def restored(tmp_path: Path) -> tuple[FsRepository, Path]:
    """A full backup (8-block relation, files to keep, replace and drop) restored."""
    repo = FsRepository(tmp_path / "repo")
    full = tar_of(
        [
            ("base", None),
            ("base/5", None),
            ("base/5/16384", b"".join(block(i) for i in range(8))),
            ("base/5/16390", b"".join(block(100 + i) for i in range(3))),
            ("base/5/dropped", b"gone"),
            ("base/6", None),
            ("base/6/1", b"a dropped database"),
            ("PG_VERSION", b"15\n"),
            ("backup_label", LABEL),
        ]
    )
    parts, members = store(repo, "full", full)
    dest = tmp_path / "data"
    restore_parts(repo, Codec(), "full", parts, members, dest, parallel=2)
    return repo, dest


def apply(repo: FsRepository, dest: Path, entries: list[tuple[str, bytes | None]]) -> int:
    parts, members = store(repo, "incr", tar_of(entries))
    return apply_incremental(repo, Codec(), "incr", parts, members, dest, block_size=BS, backup_id="B-incr")


def test_an_incremental_patches_cuts_extends_replaces_and_removes(
    restored: tuple[FsRepository, Path],
) -> None:
    repo, dest = restored
    label = LABEL + b"INCREMENTAL FROM LSN: 0/2000028\nINCREMENTAL FROM TLI: 1\n"
    apply(
        repo,
        dest,
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
            ("backup_label", label),
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
    assert incremental_from((dest / "backup_label").read_bytes()) == "0/2000028"
    assert plain_label((dest / "backup_label").read_bytes()) == LABEL


def test_many_blocks_straddling_parts_land_where_their_header_says(
    restored: tuple[FsRepository, Path],
) -> None:
    repo, dest = restored
    rng = random.Random(3)
    picked = sorted(rng.sample(range(40), 17))
    blocks = {b: rng.randbytes(BS) for b in picked}
    apply(repo, dest, [("base/5/INCREMENTAL.16384", incremental(blocks, truncate=8))])
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
    restored: tuple[FsRepository, Path], entry: tuple[str, bytes], match: str
) -> None:
    repo, dest = restored
    with pytest.raises(IntegrityError, match=match):
        apply(repo, dest, [("base", None), ("base/5", None), ("base/5/16390", b"x"), entry])


def test_both_a_file_and_its_incremental_file_is_refused(restored: tuple[FsRepository, Path]) -> None:
    repo, dest = restored
    with pytest.raises(IntegrityError, match="holds both"):
        apply(repo, dest, [("base/5/16384", b"x"), ("base/5/INCREMENTAL.16384", incremental({}, 8))])
