"""Redis logic without a server: the checkers' verdicts (from their real output), the AOF
manifest, where restored files go, and how a restore is compared with its backup."""

from __future__ import annotations

import pytest

from drkit.adapters.redis.aof import parse_manifest, rdb_as_base
from drkit.adapters.redis.checks import aof_verdict, rdb_verdict
from drkit.adapters.redis.client import Layout
from drkit.adapters.redis.sample import KeyDigest, value_digest
from drkit.domain.checks import Status
from drkit.engines.redis.compare import compare_keys, compare_sample
from drkit.engines.redis.files import FileRecord
from drkit.engines.redis.restore import plan_placements

RDB_OK = """[offset 0] Checking RDB file d/dump.rdb
[offset 27] AUX FIELD redis-ver = '7.0.15'
[offset 126] Checksum OK
[offset 126] \\o/ RDB looks OK! \\o/
[info] 3 keys read
[info] 0 expires
"""
RDB_CRC = """[offset 0] Checking RDB file bad.rdb
[offset 68] AUX FIELD used-\ufffdem = '989144'
[offset 82] Selecting DB ID 0
--- RDB ERROR DETECTED ---
[offset 126] RDB CRC error
[additional info] While doing: check-sum
[info] 3 keys read
"""
AOF_OK = """Start checking Multi Part AOF
Start to check BASE AOF (RDB format).
[offset 89] \\o/ RDB looks OK! \\o/
AOF analyzed: filename=appendonly.aof.1.base.rdb, size=89, ok_up_to=89, ok_up_to_line=1, diff=0
BASE AOF appendonly.aof.1.base.rdb is valid
Start to check INCR files.
AOF analyzed: filename=appendonly.aof.1.incr.aof, size=127, ok_up_to=127, ok_up_to_line=33, diff=0
INCR AOF appendonly.aof.1.incr.aof is valid
All AOF files and manifest are valid
"""
AOF_INCR_BAD = """Start checking Multi Part AOF
BASE AOF appendonly.aof.1.base.rdb is valid
Start to check INCR files.
AOF appendonly.aof.1.incr.aof format error
AOF analyzed: filename=appendonly.aof.1.incr.aof, size=127, ok_up_to=23, ok_up_to_line=6, diff=104
AOF appendonly.aof.1.incr.aof is not valid. Use the --fix option to try fixing it.
"""
AOF_BASE_BAD = """Start checking Multi Part AOF
Start to check BASE AOF (RDB format).
[offset 0] Checking RDB file appendonly.aof.1.base.rdb
--- RDB ERROR DETECTED ---
[offset 89] RDB CRC error
[additional info] While doing: check-sum
RDB preamble of AOF file is not sane, aborting.
"""
AOF_MISSING = """Start checking Multi Part AOF
Cannot open file appendonlydir/appendonly.aof.1.base.rdb: No such file or directory
"""


def test_rdb_verdicts() -> None:
    ok = rdb_verdict(0, RDB_OK, "dump.rdb")
    assert ok.ok and ok.detail == "RDB looks OK (3 keys)"
    bad = rdb_verdict(1, RDB_CRC, "dump.rdb")
    assert not bad.ok and bad.file == "dump.rdb" and bad.detail == "[offset 126] RDB CRC error"
    assert not rdb_verdict(0, "something else", "dump.rdb").ok


@pytest.mark.parametrize(
    ("output", "culprit", "detail"),
    [
        (AOF_INCR_BAD, "appendonly.aof.1.incr.aof", "not a valid AOF after byte 23 of 127"),
        (AOF_BASE_BAD, "appendonly.aof.1.base.rdb", "its RDB part is damaged: [offset 89] RDB CRC error"),
        (AOF_MISSING, "appendonly.aof.1.base.rdb", "Cannot open file"),
    ],
)
def test_aof_verdicts_name_the_damaged_file(output: str, culprit: str, detail: str) -> None:
    assert aof_verdict(0, AOF_OK, "appendonly.aof.manifest").ok
    bad = aof_verdict(1, output, "appendonly.aof.manifest")
    assert not bad.ok
    assert bad.file == culprit
    assert bad.detail.startswith(detail)


def test_aof_manifest() -> None:
    text = (
        "file appendonly.aof.1.base.rdb seq 1 type h\n"
        "file appendonly.aof.2.base.rdb seq 2 type b\n"
        'file "appendonly.aof.2.incr.aof" seq 2 type i\n'
    )
    entries = parse_manifest(text)
    assert [(e.name, e.type, e.needed) for e in entries] == [
        ("appendonly.aof.1.base.rdb", "h", False),
        ("appendonly.aof.2.base.rdb", "b", True),
        ("appendonly.aof.2.incr.aof", "i", True),
    ]
    for bad in ("file ../../etc/passwd seq 1 type b", "file a seq x type b", "file a seq 1 type z", "junk"):
        with pytest.raises(ValueError, match="line 1"):
            parse_manifest(bad)
    with pytest.raises(ValueError, match="more than one base"):
        parse_manifest("file a seq 1 type b\nfile b seq 2 type b\n")
    base, listing = rdb_as_base("appendonly.aof")
    assert parse_manifest(listing)[0].name == base == "appendonly.aof.1.base.rdb"


RDB = FileRecord("dump.rdb", "rdb", 10, "x", ("dump.rdb.00000.zst",))
AOF = [
    RDB,
    FileRecord("appendonlydir/appendonly.aof.manifest", "aof-manifest", 1, "x", ()),
    FileRecord("appendonlydir/appendonly.aof.1.base.rdb", "aof-base", 1, "x", ()),
    FileRecord("appendonlydir/appendonly.aof.1.incr.aof", "aof-incr", 1, "x", ()),
]


def test_without_aof_only_the_rdb_goes_in_place() -> None:
    placements, _ = plan_placements(AOF, Layout("/data", "redis.rdb", appendonly=False))
    assert [(p.dest, p.src) for p in placements] == [("redis.rdb", "dump.rdb")]


def test_with_aof_the_backups_aof_goes_in_place_under_the_servers_names() -> None:
    layout = Layout("/data", "dump.rdb", appendonly=True, appenddirname="aof", appendfilename="nchat.aof")
    placements, mode = plan_placements(AOF, layout)
    assert {p.dest: p.src for p in placements} == {
        "dump.rdb": "dump.rdb",
        "aof/appendonly.aof.1.base.rdb": "appendonlydir/appendonly.aof.1.base.rdb",
        "aof/appendonly.aof.1.incr.aof": "appendonlydir/appendonly.aof.1.incr.aof",
        "aof/nchat.aof.manifest": "appendonlydir/appendonly.aof.manifest",
    }
    assert "AOF" in mode


def test_an_rdb_alone_into_a_server_with_aof_becomes_the_aof_base() -> None:
    placements, mode = plan_placements([RDB], Layout("/data", "dump.rdb", appendonly=True))
    by_dest = {p.dest: p for p in placements}
    assert by_dest["appendonlydir/appendonly.aof.1.base.rdb"].src == "dump.rdb"
    listing = by_dest["appendonlydir/appendonly.aof.manifest"].content
    assert listing == b"file appendonly.aof.1.base.rdb seq 1 type b\n"
    assert by_dest["dump.rdb"].src == "dump.rdb"
    assert "base" in mode


def test_key_counts() -> None:
    assert compare_keys({0: 10}, {0: 3}, {0: 10})[0].status is Status.OK
    assert compare_keys({0: 10}, {0: 3}, {0: 8})[0].status is Status.WARNING  # TTLs ran out
    assert compare_keys({0: 10}, {0: 3}, {0: 6})[0].status is Status.FAILED
    assert compare_keys({0: 10}, {0: 3}, {0: 11})[0].status is Status.FAILED
    assert compare_keys({0: 10}, {}, {0: 10, 1: 1})[0].status is Status.FAILED


def test_sample() -> None:
    keep = KeyDigest(0, "cache:1", "string", "aa")
    gone = KeyDigest(0, "session:1", "hash", "bb", expire_at_ms=1_000)
    later = KeyDigest(0, "session:2", "hash", "cc", expire_at_ms=9_000)
    ok = compare_sample([keep, gone, later], [keep, later], now_ms=5_000)
    assert ok[0].status is Status.OK and "1 expired" in ok[0].detail
    missing = compare_sample([keep, later], [keep], now_ms=5_000)
    assert missing[0].status is Status.FAILED and "'session:2' (db0) is missing" in missing[0].detail
    changed = compare_sample([keep], [KeyDigest(0, "cache:1", "string", "zz")], now_ms=0)
    assert changed[0].status is Status.FAILED
    lost_ttl = compare_sample([later], [KeyDigest(0, "session:2", "hash", "cc")], now_ms=0)
    assert lost_ttl[0].status is Status.FAILED


def test_digests_ignore_table_order_but_not_values_or_types() -> None:
    h1 = value_digest("hash", {b"a": b"1", b"b": b"2"}, 2, None)
    assert h1 == value_digest("hash", {b"b": b"2", b"a": b"1"}, 2, None)
    assert h1 != value_digest("hash", {b"a": b"1", b"b": b"3"}, 2, None)
    assert value_digest("set", {b"x", b"y"}, 2, None) == value_digest("set", [b"y", b"x"], 2, None)
    assert value_digest("list", [b"x", b"y"], 2, None) != value_digest("list", [b"y", b"x"], 2, None)
    assert value_digest("string", b"a", 1, None) != value_digest("list", [b"a"], 1, None)
    big = value_digest("set", None, 10**6, None)
    assert big == value_digest("set", None, 10**6, None) != value_digest("set", None, 10**6 + 1, None)
