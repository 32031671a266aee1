"""drkit's delta below PostgreSQL 17, read from a data directory: only the blocks whose page
LSN is after the parent's start (or zero), in PostgreSQL 17's incremental format; what
pg_basebackup leaves out left out; pg_control last; the label naming the parent."""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

from drkit.adapters.postgres.delta_scan import DeltaScan
from drkit.adapters.postgres.incremental_file import parse_header

BS = 8192
SINCE = 0x2000000  # the parent started at 0/2000000


def page(lsn: int, fill: int = 1) -> bytes:
    if lsn == 0 and fill == 0:
        return bytes(BS)
    return struct.pack("<II", lsn >> 32, lsn & 0xFFFFFFFF) + bytes([fill]) * (BS - 8)


def make_data_dir(root: Path) -> None:
    files = {
        "PG_VERSION": b"15\n",
        "global/pg_control": b"\x01" * 8192,
        "global/1262": page(0x100),
        "base/5/16384": page(0x100) + page(0x3000000, 2) + page(0, 0) + page(0x50),
        "base/5/16384_fsm": page(0x10),
        "base/5/16390": page(0x3000000),  # unlogged: its _init fork says so
        "base/5/16390_init": page(0),
        "base/5/pg_internal.init": b"cache",
        "pg_wal/000000010000000000000001": b"w" * 100,
        "pg_wal/archive_status/000000010000000000000001.done": b"",
        "pg_stat_tmp/global.stat": b"s",
        "postmaster.pid": b"123\n",
        "postgresql.auto.conf": b"# auto\n",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def scan(root: Path, method: str = "block") -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    delta = DeltaScan(root, SINCE, block_size=BS, method=method)
    stream = b"".join([*delta.chunks(), *delta.end(b"LABEL\n", b"")])
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as tar:
        members = tar.getmembers()
        data = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}  # type: ignore[union-attr]
    return members, data


def test_only_blocks_written_since_the_parent_started_are_stored(tmp_path: Path) -> None:
    make_data_dir(tmp_path)
    _members, data = scan(tmp_path)
    raw = data["base/5/INCREMENTAL.16384"]
    header = parse_header(raw, block_size=BS, member_size=len(raw))
    assert header.blocks == (1, 2) and header.truncate == 4  # the new one and the zero one
    assert raw[header.length : header.length + BS] == page(0x3000000, 2)
    assert "base/5/16384" not in data
    assert data["base/5/16384_fsm"] == page(0x10)  # the free space map: whole
    assert data["global/INCREMENTAL.1262"][:4] == struct.pack("<I", 0xD3AE1F0D)


def test_what_pg_basebackup_leaves_out_is_left_out_and_pg_control_comes_last(tmp_path: Path) -> None:
    make_data_dir(tmp_path)
    members, data = scan(tmp_path)
    names = [m.name for m in members]
    assert "base/5/16390_init" in data and not any(n.endswith("16390") for n in names)
    for gone in ("postmaster.pid", "base/5/pg_internal.init", "pg_stat_tmp/global.stat"):
        assert gone not in names
    assert not any(n.startswith("pg_wal/0000") for n in names)
    assert {"pg_wal", "pg_wal/archive_status", "pg_stat_tmp"} <= set(names)
    files = [m.name for m in members if m.isfile()]
    assert files[-2:] == ["global/pg_control", "backup_label"]


def test_file_level_stores_a_changed_relation_file_whole(tmp_path: Path) -> None:
    make_data_dir(tmp_path)
    _members, data = scan(tmp_path, method="file")
    assert data["base/5/16384"] == (tmp_path / "base/5/16384").read_bytes()
    assert "global/INCREMENTAL.1262" in data  # unchanged: referenced, no block stored


def test_a_file_as_the_parent_scan_saw_it_is_not_read_again(tmp_path: Path) -> None:
    """Size and modification time as recorded, and written well before that scan: an empty
    incremental file keeps the parent's copy. Written since (or just before): read."""
    import os
    import time

    from drkit.adapters.postgres.delta_scan import Seen

    make_data_dir(tmp_path)
    old = time.time() - 3600
    for path in tmp_path.rglob("*"):
        os.utime(path, (old, old))
    first = DeltaScan(tmp_path, SINCE, block_size=BS)
    b"".join(first.chunks())
    parent = Seen.from_json(first.seen.to_json())
    (tmp_path / "global/1262").write_bytes(page(0x3000000))  # written since: a new mtime
    delta = DeltaScan(tmp_path, SINCE, block_size=BS, parent_seen=parent)
    stream = b"".join([*delta.chunks(), *delta.end(b"LABEL\n", b"")])
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as tar:
        data = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    unchanged = data["base/5/INCREMENTAL.16384"]
    header = parse_header(unchanged, block_size=BS, member_size=len(unchanged))
    assert header.blocks == () and header.truncate == 4  # not read: the parent's copy stays
    assert "base/5/INCREMENTAL.16384_fsm" in data  # another fork, unchanged: referenced too
    assert data["global/1262"] == page(0x3000000)  # read: its one block changed, stored whole
    assert delta.report.unchanged_files == 3  # 16384, 16384_fsm, 16390_init
