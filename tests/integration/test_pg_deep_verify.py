"""Deep verification that finds corruption: pg_basebackup's checksum check at backup time,
pg_verifybackup and pg_amcheck on the restored copy, logical dumps restored and counted."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
from pathlib import Path
from typing import Any

import zstandard

from drkit.adapters.postgres.client import connect
from drkit.infra.proc import find_tool, run
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle

PAGE = 8192


def backups(box: SandboxHandle) -> list[dict[str, Any]]:
    listed = run_drkit("--output", "json", "backups", "list", config=box.config_path)
    assert listed.code == 0, listed.stderr
    found: list[dict[str, Any]] = listed.json()["backups"]
    return found


def data_dir(box: SandboxHandle) -> Path:
    return Path(box.box.postgres_runtime().data_dir)


def backup_dir(box: SandboxHandle, backup_id: str) -> Path:
    return box.dir / "repo" / "sandbox" / "postgres" / "backups" / backup_id


def verify_deep(box: SandboxHandle, backup_id: str) -> tuple[int, dict[str, dict[str, str]]]:
    out = run_drkit("--output", "json", "verify", backup_id, "--deep", config=box.config_path, timeout=600)
    assert out.code in (0, 3), out.stdout + out.stderr
    return out.code, {r["name"]: r for r in out.json()["results"]}


def test_a_page_corrupted_in_the_live_cluster_fails_the_backup_naming_the_file(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    relation = box.psql("select pg_relation_filepath('nchat_messages')")
    assert box.psql("select pg_relation_size('nchat_messages')") >= 2 * PAGE
    before = backups(box)
    runtime = box.box.postgres_runtime()
    runtime.stop()
    with open(data_dir(box) / relation, "r+b") as heap:  # tuple data of block 1; header intact
        heap.seek(PAGE + PAGE // 2)
        heap.write(b"\xde\xad\xbe\xef" * 8)
    runtime.start()

    made = run_drkit("backup", config=box.config_path)
    assert made.code == 1, made.stdout + made.stderr
    assert relation in made.stderr and "checksum" in made.stderr, made.stderr
    assert backups(box) == before, "a backup of a damaged cluster must not be listed as complete"


def _corrupt_btree_leaf(path: Path, block: int) -> None:
    """Raise the key of one tuple in the middle of an int4 btree leaf page above every key
    after it: the page still parses, only its ordering (and high key) invariants break."""
    with open(path, "r+b") as index:
        index.seek(block * PAGE)
        page = bytearray(index.read(PAGE))
        pd_lower = struct.unpack_from("<H", page, 12)[0]
        items = (pd_lower - 24) // 4
        assert items > 100
        item_id = struct.unpack_from("<I", page, 24 + 4 * 99)[0]
        offset = item_id & 0x7FFF
        struct.pack_into("<i", page, offset + 8, 0x7FFFFF00)  # IndexTupleData is 8 bytes
        index.seek(block * PAGE)
        index.write(page)


def test_a_btree_page_corrupted_with_valid_checksums_is_caught_by_deep_verify(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    box.psql("create table dv_probe (id int primary key, note text)")
    box.psql("insert into dv_probe select g, 'n' || g from generate_series(1, 10000) g")
    box.psql("checkpoint")
    clean = run_drkit("--output", "json", "backup", config=box.config_path)
    assert clean.code == 0, clean.stderr
    code, results = verify_deep(box, clean.json()[0]["backup_id"])
    assert code == 0, results
    assert results["pg_verifybackup"]["status"] == "ok"
    assert results["amcheck"]["status"] == "ok", results["amcheck"]

    relation = box.psql("select pg_relation_filepath('dv_probe_pkey')")
    runtime = box.box.postgres_runtime()
    runtime.stop()
    _corrupt_btree_leaf(data_dir(box) / relation, block=1)
    pg_checksums = find_tool("pg_checksums", runtime.spec.bin_dir)
    for flag in ("--disable", "--enable"):  # recompute: the page's checksum is valid again
        run([pg_checksums, flag, "-D", str(data_dir(box))], timeout=120, os_user=box.box.os_user)
    runtime.start()

    made = run_drkit("--output", "json", "backup", config=box.config_path)
    assert made.code == 0, "the checksums are valid: pg_basebackup cannot see this damage"
    code, results = verify_deep(box, made.json()[0]["backup_id"])
    assert code == 3
    assert results["pg_verifybackup"]["status"] == "ok"
    assert results["restore"]["status"] == "ok"
    assert results["amcheck"]["status"] == "failed"
    assert "dv_probe_pkey" in results["amcheck"]["detail"], results["amcheck"]
    assert not list((box.dir / "state" / "verify").iterdir()), "the scratch copy is removed"


def test_a_part_damaged_before_it_was_hashed_is_caught_by_pg_verifybackup(
    private_sandbox: SandboxHandle,
) -> None:
    """The stored parts' SHA-256 are drkit's; the server's backup_manifest checksums every
    file as it read it. A part damaged before drkit hashed it (here: rewritten and its
    manifest entry updated to match) passes the file checks and fails pg_verifybackup."""
    box = private_sandbox
    relation = box.psql("select pg_relation_filepath('nchat_messages')")
    made = run_drkit("--output", "json", "backup", config=box.config_path)
    assert made.code == 0, made.stderr
    m = made.json()[0]
    directory = backup_dir(box, m["backup_id"])
    members = json.loads(unzstd(directory / "tarindex.json.zst"))
    member = next(e for e in members if e["name"] == relation)
    at, start = member["offset"] + member["size"] // 2, 0
    for stored in (f for f in m["files"] if f["name"].startswith("base.")):
        if start <= at < start + stored["raw_size"]:
            break
        start += stored["raw_size"]
    raw = bytearray(unzstd(directory / stored["name"]))
    raw[at - start] ^= 0xFF
    packed = zstandard.ZstdCompressor().compress(bytes(raw))
    (directory / stored["name"]).write_bytes(packed)
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for f in manifest["files"]:
        if f["name"] == stored["name"]:
            f["sha256"], f["size"] = hashlib.sha256(packed).hexdigest(), len(packed)
    manifest_path.write_text(json.dumps(manifest))

    code, results = verify_deep(box, m["backup_id"])
    assert code == 3
    assert all(r["status"] == "ok" for n, r in results.items() if n.startswith("file "))
    assert results["pg_verifybackup"]["status"] == "failed", results
    assert relation in results["pg_verifybackup"]["detail"]


def unzstd(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())


def _writer(dsn: str, stop: threading.Event) -> None:
    with connect(dsn) as conn:
        conn.execute("create table if not exists dv_churn (id serial primary key, at timestamptz)")
        while not stop.is_set():
            conn.execute("insert into dv_churn (at) values (now())")


def test_logical_deep_verify_restores_the_dumps_and_compares_the_counts_of_their_snapshot(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    box.psql("create table dv_churn (id serial primary key, at timestamptz)")
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(box.dsn, stop), daemon=True)
    writer.start()
    try:
        made = run_drkit("--output", "json", "backup", "--type", "logical", config=box.config_path)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert made.code == 0, made.stderr
    m = made.json()[0]
    counts = m["details"]["row_counts"]
    assert counts["nchat:public.nchat_messages"] == 1000
    assert m["details"]["row_counts_estimated"] == []
    assert box.psql("select count(*) from dv_churn") >= counts["nchat:public.dv_churn"]

    code, results = verify_deep(box, m["backup_id"])
    assert code == 0, results
    assert results["restore"]["status"] == "ok", results["restore"]
    assert results["row counts"]["status"] == "ok"
    assert "exact counts equal" in results["row counts"]["detail"]

    # The manifest says one row more than the dump holds: the restore must disagree.
    manifest_path = backup_dir(box, m["backup_id"]) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["details"]["row_counts"]["nchat:public.nchat_messages"] = 1001
    manifest_path.write_text(json.dumps(manifest))
    code, results = verify_deep(box, m["backup_id"])
    assert code == 3
    bad = results["rows nchat:public.nchat_messages"]
    assert bad["status"] == "failed" and "restored 1000 != recorded 1001" in bad["detail"]
    assert box.psql("select count(*) from nchat_messages") == 1000, "the live server is untouched"


def test_counts_at_backup_time_estimate_big_and_locked_tables_and_say_so(sandbox: SandboxHandle) -> None:
    from drkit.adapters.postgres.counts import LOCK_TIMEOUT_MS, cheap_counts

    sandbox.psql("analyze nchat_messages")
    big = cheap_counts(sandbox.dsn, ["nchat"], exact_max_bytes=PAGE)
    assert "nchat:public.nchat_messages" in big.estimated
    assert abs(big.counts["nchat:public.nchat_messages"] - 1000) <= 200
    assert "nchat:public.nchat_channels" not in big.estimated  # one page: counted

    # A table locked by a long migration: its count gives up after lock_timeout.
    with connect(sandbox.dsn, autocommit=False) as holder:
        holder.execute("lock table nchat_channels in access exclusive mode")
        started = time.monotonic()
        locked = cheap_counts(sandbox.dsn, ["nchat"])
        took = time.monotonic() - started
        holder.rollback()
    assert locked.estimated == {"nchat:public.nchat_channels"}
    assert took < LOCK_TIMEOUT_MS / 1000 + 10
    assert locked.counts["nchat:public.nchat_messages"] == sandbox.psql("select count(*) from nchat_messages")
