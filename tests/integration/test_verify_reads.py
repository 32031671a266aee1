"""`drkit verify` checks what a restore will read, on real servers (issue 16, items 6 and 9):
a flipped byte in an archived WAL segment or an object pack fails it naming the file; a
logical dump that `restore --database` cannot load fails `verify --deep`, and the failed
restore leaves no database behind; deep verify of an objects backup restores it into a
scratch bucket and removes it. A backup that fails is never recorded as verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from drkit.adapters.postgres.client import connect
from drkit.domain.errors import IntegrityError
from drkit.domain.wal import Lsn, Segment
from drkit.engines.core.catalog import list_backups
from drkit.engines.objects import backup as objects_backup
from drkit.engines.objects import verify as objects_verify
from tests.conftest import CliResult, run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import switch_and_wait_archived
from tests.integration.s3_fixtures import S3Server
from tests.integration.test_objects import objects_stack

pytestmark = pytest.mark.integration


def _verify(config: Path, *args: str, timeout: float = 600) -> tuple[CliResult, dict[str, dict[str, Any]]]:
    out = run_drkit("--output", "json", "verify", *args, config=config, timeout=timeout)
    assert out.code in (0, 3), out.stdout + out.stderr
    return out, {r["name"]: r for r in out.json()["results"]}


def _flip(path: Path) -> bytes:
    """Flip one bit in the middle of a stored file; return the original bytes."""
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))
    return original


def _backup_dir(box: SandboxHandle, backup_id: str, service: str = "postgres") -> Path:
    return box.dir / "repo" / "sandbox" / service / "backups" / backup_id


def test_a_flipped_byte_in_a_wal_segment_fails_verify_naming_it(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    made = run_drkit("--output", "json", "backup", config=box.config_path)
    assert made.code == 0, made.stderr
    m = made.json()[0]
    backup_id, pg = m["backup_id"], m["postgres"]
    start = Segment.containing(Lsn.parse(pg["start_lsn"]), pg["timeline"], pg["wal_segment_size"])
    box.psql("create table vr_later (id int)")
    box.psql("insert into vr_later select generate_series(1, 100)")
    later = switch_and_wait_archived(box.dsn)  # WAL a restore to latest replays after the backup
    wal_dir = box.dir / "repo" / "sandbox" / "postgres" / "wal" / f"{pg['timeline']:08X}"
    verified = _backup_dir(box, backup_id) / "verified.json"

    for name, says in ((start.name, "the backup cannot be restored"), (later, f"stops before {later}")):
        stored = wal_dir / f"{name}.zst"
        original = _flip(stored)
        out, results = _verify(box.config_path, backup_id)
        stored.write_bytes(original)
        assert out.code == 3, results
        assert results["wal"]["status"] == "failed", results["wal"]
        assert name in results["wal"]["detail"] and says in results["wal"]["detail"], results["wal"]
        assert not verified.exists(), "a backup that failed verify must not be recorded as verified"

    out, results = _verify(box.config_path, backup_id)
    assert out.code == 0, results
    assert "re-read and intact" in results["wal"]["detail"], results["wal"]
    assert json.loads(verified.read_text())["deep"] is False


FUNCTION_INDEX = """
create table vr_lookup (k int primary key, v int);
insert into vr_lookup values (1, 10), (2, 20);
create table vr_data (id int primary key, k int);
insert into vr_data select g, 1 + g % 2 from generate_series(1, 50) g;
create function vr_val(int) returns int language sql immutable
  as $$ select v from vr_lookup where k = $1 $$;
create index vr_data_val on vr_data (vr_val(k));
"""


def _databases(box: SandboxHandle) -> set[str]:
    with connect(box.dsn) as conn:
        return {str(r[0]) for r in conn.execute("select datname from pg_database").fetchall()}


def test_a_dump_restore_cannot_load_fails_deep_verify_and_its_restore_leaves_nothing(
    private_sandbox: SandboxHandle,
) -> None:
    """An index on an SQL function that reads another table: pg_dump's empty search_path
    makes its CREATE INDEX fail on restore. Deep verify must say so, with PostgreSQL's own
    message; the real restore fails the same way and drops the database it created."""
    box = private_sandbox
    with connect(box.dsn) as conn:
        conn.execute(FUNCTION_INDEX)
    made = run_drkit("--output", "json", "backup", "--type", "logical", config=box.config_path)
    assert made.code == 0, made.stderr
    backup_id = made.json()[0]["backup_id"]
    before = _databases(box)

    out, results = _verify(box.config_path, backup_id, "--deep")
    assert out.code == 3, results
    restore = results["restore"]
    assert restore["status"] == "failed", restore
    assert 'relation "vr_lookup" does not exist' in restore["detail"], restore
    assert "CREATE INDEX vr_data_val" in restore["detail"], restore
    assert not (_backup_dir(box, backup_id) / "verified.json").exists()
    assert not list((box.dir / "state" / "verify").iterdir()), "the scratch cluster is removed"

    again = run_drkit("restore", "postgres", "--database", "vr_copy", config=box.config_path)
    assert again.code == 1, again.stdout + again.stderr
    assert 'ERROR: relation "vr_lookup" does not exist' in again.stderr, again.stderr
    assert "vr_copy" in again.stderr and "dropped" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    assert _databases(box) == before, "the failed restore left a database behind"

    box.psql("drop table vr_data")
    tables = run_drkit("restore", "postgres", "--table", "vr_data", "--yes", config=box.config_path)
    assert tables.code == 1, tables.stdout + tables.stderr
    assert 'relation "vr_lookup" does not exist' in tables.stderr, tables.stderr
    assert _databases(box) == before, "the scratch database of a --table restore is dropped"


def _objects_backup(s3_server: S3Server, tmp_path: Path) -> tuple[Path, dict[str, Any], str]:
    store = s3_server.store()
    bucket = s3_server.new_bucket("vr-objects")
    for i in range(30):
        store.put(bucket, f"small/{i}.txt", f"attachment {i}".encode() * 20, "text/plain", {"n": str(i)})
    store.put(
        bucket, "big.bin", bytes(range(256)) * (5 * 4096), "application/octet-stream", {}
    )  # 5 MiB: parts
    store.put(bucket, "small/0.txt", b"rewritten", "text/plain", {})  # an older version stays
    store.delete(bucket, "small/1.txt")
    _ws, _service, config = objects_stack(s3_server, tmp_path, bucket)
    made = run_drkit("--output", "json", "backup", "objects", config=config)
    assert made.code == 0, made.stderr
    return config, made.json()[0], bucket


def test_a_flipped_byte_in_an_object_pack_or_part_fails_verify_naming_it(
    s3_server: S3Server, tmp_path: Path
) -> None:
    config, m, bucket = _objects_backup(s3_server, tmp_path)
    objects = tmp_path / "repo" / "objects-it" / "objects" / "objects" / bucket
    verified = tmp_path / "repo" / "objects-it" / "objects" / "backups" / m["backup_id"] / "verified.json"
    (pack,) = (objects / "packs").iterdir()
    part = sorted((objects / "blobs").rglob("*.zst"))[0]
    for stored in (pack, part):
        original = _flip(stored)
        out, results = _verify(config, m["backup_id"], "--service", "objects")
        stored.write_bytes(original)
        check = results[f"objects of {bucket}"]
        assert out.code == 3 and check["status"] == "failed", results
        assert stored.name in check["detail"], check
        assert not verified.exists()
    out, results = _verify(config, m["backup_id"])  # found by its id, whatever its service
    assert out.code == 0, results
    assert "every SHA-256 matches" in results[f"objects of {bucket}"]["detail"]
    assert verified.exists()


def test_deep_verify_of_an_objects_backup_restores_into_a_scratch_bucket_and_removes_it(
    s3_server: S3Server, tmp_path: Path
) -> None:
    config, m, bucket = _objects_backup(s3_server, tmp_path)
    buckets = set(s3_server.store().buckets())
    out, results = _verify(config, "--service", "objects", "--deep")
    assert out.code == 0, results
    assert out.json()["backup_id"] == m["backup_id"]
    restored = results[f"restore of {bucket}"]
    assert restored["status"] == "ok" and "30 objects restored into a scratch bucket" in restored["detail"]
    assert set(s3_server.store().buckets()) == buckets, "the scratch bucket is removed"


def test_a_deep_objects_verify_that_fails_midway_still_removes_its_scratch_bucket(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = s3_server.store()
    bucket = s3_server.new_bucket("vr-midway")
    store.put(bucket, "a.txt", b"a", "text/plain", {})
    ws, service, _config = objects_stack(s3_server, tmp_path, bucket)
    m = objects_backup.backup(ws, service).manifest
    assert list_backups(ws.repo, ws.stack.name, service.name).complete
    before = set(store.buckets())

    def restores_half(ws: Any, service: Any, options: Any, manifest: Any) -> None:
        store.create_bucket(options.to)
        store.enable_versioning(options.to)
        store.put(options.to, "a.txt", b"a", "text/plain", {})
        store.delete(options.to, "a.txt")  # a version and a delete marker to remove
        raise IntegrityError("the server went away halfway")

    monkeypatch.setattr(objects_verify, "restore_locked", restores_half)
    results = objects_verify.verify_objects(ws, service, m, deep=True)
    assert [r.status.value for r in results] == ["ok", "failed"], results
    assert "the server went away halfway" in results[1].detail
    assert set(store.buckets()) == before, "the scratch bucket is removed, every version of it"
