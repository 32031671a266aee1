"""The tar indexer sees the stream in arbitrary chunks and must agree with tarfile exactly."""

from __future__ import annotations

import io
import random
import tarfile

import pytest

from drkit.adapters.postgres.tarindex import (
    Member,
    TarIndexer,
    members_from_json,
    members_to_json,
)


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o700) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    tar.addfile(info)


def random_tar(rng: random.Random) -> bytes:
    """A ustar stream like pg_basebackup's: dirs, files of awkward sizes, symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        add_dir(tar, "base")
        for i in range(rng.randint(1, 25)):
            kind = rng.random()
            if kind < 0.15:
                add_dir(tar, f"base/d{i}", mode=rng.choice([0o700, 0o750, 0o755]))
            elif kind < 0.25:
                add_symlink(tar, f"link{i}", f"/srv/tablespace/{i}")
            else:
                size = rng.choice([0, 1, 511, 512, 513, 1024, rng.randint(0, 20_000)])
                # ustar splits names longer than 100 characters into prefix + name.
                name = f"base/{'x' * rng.choice([1, 120])}/f{i}" if rng.random() < 0.1 else f"base/f{i}"
                add_file(tar, name, rng.randbytes(size), mode=rng.choice([0o600, 0o640, 0o644]))
    return buf.getvalue()


def feed_in_chunks(data: bytes, rng: random.Random, indexer: TarIndexer) -> None:
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 7, 511, 512, 513, rng.randint(1, 8192)])
        indexer.feed(data[pos : pos + step])
        pos += step
    assert indexer.position == len(data)


def expected_members(data: bytes) -> list[Member]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar.getmembers():
            kind = "dir" if info.isdir() else "symlink" if info.issym() else "file"
            out.append(
                Member(
                    name=info.name,
                    type=kind,
                    mode=info.mode,
                    size=info.size if kind == "file" else 0,
                    offset=info.offset_data,
                    linkname=info.linkname,
                )
            )
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_streams_in_random_chunks_match_tarfile(seed: int) -> None:
    rng = random.Random(seed)
    data = random_tar(rng)
    indexer = TarIndexer()
    feed_in_chunks(data, rng, indexer)
    assert indexer.members == expected_members(data)


def test_offsets_point_at_each_files_data() -> None:
    rng = random.Random(99)
    data = random_tar(rng)
    indexer = TarIndexer()
    indexer.feed(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in indexer.members:
            if member.type == "file":
                fh = tar.extractfile(member.name)
                assert fh is not None
                assert data[member.offset : member.offset + member.size] == fh.read()


def test_one_byte_at_a_time() -> None:
    data = random_tar(random.Random(7))
    indexer = TarIndexer()
    for i in range(len(data)):
        indexer.feed(data[i : i + 1])
    assert indexer.members == expected_members(data)


def test_trailing_bytes_after_the_end_marker_are_not_members() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        add_file(tar, "only", b"x" * 10)
    indexer = TarIndexer()
    indexer.feed(buf.getvalue() + b"garbage that is not a header" * 40)
    assert [m.name for m in indexer.members] == ["only"]


LABEL = (
    b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
    b"CHECKPOINT LOCATION: 0/2000060\n"
    b"BACKUP METHOD: streamed\n"
    b"BACKUP FROM: primary\n"
    b"START TIME: 2026-02-09 14:30:00 UTC\n"
    b"LABEL: drkit 20260209T143000Z-base\n"
    b"START TIMELINE: 1\n"
)


@pytest.mark.parametrize("seed", range(10))
def test_captures_backup_label_and_manifest_whatever_the_chunking(seed: int) -> None:
    rng = random.Random(seed)
    manifest = b'{"PostgreSQL-Backup-Manifest-Version": 1, "WAL-Ranges": []}' * 30
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        add_file(tar, "PG_VERSION", b"15\n")
        add_file(tar, "global/pg_control", rng.randbytes(8192))
        add_file(tar, "backup_label", LABEL)
        add_file(tar, "base/1/1259", rng.randbytes(rng.randint(0, 30_000)))
        add_file(tar, "backup_manifest", manifest)
    indexer = TarIndexer(capture=frozenset({"backup_label", "backup_manifest"}))
    feed_in_chunks(buf.getvalue(), rng, indexer)
    assert bytes(indexer.captured["backup_label"]) == LABEL
    assert bytes(indexer.captured["backup_manifest"]) == manifest
    assert set(indexer.captured) == {"backup_label", "backup_manifest"}


def test_corrupt_header_is_an_error_with_its_offset() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        add_file(tar, "a", b"1" * 600)  # header at 0, data 512..1112, next header at 1536
        add_file(tar, "b", b"2")
    data = bytearray(buf.getvalue())
    data[1536 + 148 : 1536 + 156] = b"garbage!"  # the second header's checksum
    with pytest.raises(ValueError, match="corrupt tar header at offset 1536"):
        TarIndexer().feed(bytes(data))


def test_gnu_long_name_is_refused_not_misread() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        add_file(tar, "d/" + "n" * 150, b"data")
    with pytest.raises(ValueError, match="unsupported tar extension header"):
        TarIndexer().feed(buf.getvalue())


def test_index_json_round_trip() -> None:
    data = random_tar(random.Random(3))
    indexer = TarIndexer()
    indexer.feed(data)
    assert members_from_json(indexer.to_json()) == indexer.members
    assert members_from_json(members_to_json(tuple(indexer.members))) == indexer.members
