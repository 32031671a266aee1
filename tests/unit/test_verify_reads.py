"""What verify reads and what it records, on a synthetic repository: archived WAL re-read
and checked (each file once per run), pg_restore's errors as PostgreSQL said them, a
database a failed logical restore created dropped or named, the Redis file records a
restore follows, which backup `verify` picks, and verified.json only after a verify that
read everything a restore reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from drkit.adapters.postgres.pg_restore import RULES, pg_restore_error
from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.fs import FsRepository
from drkit.config.loader import load_stack
from drkit.domain.backup import BackupKind, Manifest, StoredFile
from drkit.domain.checks import Status
from drkit.domain.errors import OperationError, ToolError
from drkit.engines.core.layout import verified_key
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.postgres import logical_restore
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.postgres.wal_check import WalRehash
from drkit.engines.redis.verify import verify_layout
from drkit.engines.stack.verify import choose_backup_to_verify, verify_backup

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
SEGMENTS = [f"0000000100000000000000{n:02X}" for n in range(1, 5)]
SIZE = 64 * 1024  # a small segment size keeps the test fast; checked only without a hash


def _workspace(tmp_path: Path, **encryption: str) -> Workspace:
    config: dict[str, Any] = {
        "version": 1,
        "stack": "sandbox",
        "state_dir": str(tmp_path / "state"),
        "repositories": {"local": {"type": "fs", "path": str(tmp_path / "repo")}},
        "services": {
            "postgres": {"kind": "postgres", "dsn": "host=127.0.0.1 port=1"},
            "s3": {"kind": "s3", "url": "http://k@127.0.0.1:1?buckets=b"},
        },
    }
    if encryption:
        config["encryption"] = encryption
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(config))
    return open_workspace(load_stack(path))


class CountingRepo(FsRepository):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def get(self, key: str) -> bytes:
        self.reads.append(key)
        return super().get(key)


def _archive(tmp_path: Path) -> WalArchive:
    archive = WalArchive(CountingRepo(str(tmp_path / "repo")), "sandbox", "postgres", Codec())
    for i, name in enumerate(SEGMENTS):
        archive.push_bytes(name, bytes([i]) * SIZE)
    return archive


def test_wal_is_reread_once_per_run_and_damage_or_other_content_is_named(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    repo = archive.repo
    assert isinstance(repo, CountingRepo)
    rehash = WalRehash(archive, SIZE)
    assert rehash.check(SEGMENTS[:3]).checked == 3
    assert rehash.check(SEGMENTS).checked == 4
    segment_reads = [k for k in repo.reads if k.endswith(".zst")]
    assert len(segment_reads) == 4, "each segment is read once, however many backups need it"

    key = archive.locate(SEGMENTS[1])
    assert key is not None
    stored = bytearray(repo.get(key))
    stored[len(stored) // 2] ^= 1
    repo.put(key, bytes(stored), overwrite=True)
    other = archive.locate(SEGMENTS[2])
    assert other is not None
    repo.put(other, Codec().encode(b"\x07" * SIZE), overwrite=True)  # sound zstd, other bytes
    found = WalRehash(archive, SIZE).check(SEGMENTS)
    assert [d.name for d in found.damaged] == SEGMENTS[1:3]
    assert "not valid zstd data" in (found.damaged[0].problem or "")
    assert (
        found.damaged[1].problem
        == f"archived {SEGMENTS[2]} does not match its recorded SHA-256; it is damaged"
    )
    assert found.checked == 2


def test_wal_without_a_hash_is_checked_for_size_and_encrypted_wal_without_a_key_is_unread(
    tmp_path: Path,
) -> None:
    archive = _archive(tmp_path)
    name = SEGMENTS[0]
    archive.repo.delete(f"sandbox/postgres/wal/00000001/{name}.sha256")  # archived by an old drkit
    key = archive.locate(name)
    assert key is not None
    archive.repo.put(key, Codec().encode(b"\0" * (SIZE - 1)), overwrite=True)
    (bad,) = WalRehash(archive, SIZE).check([name]).damaged
    assert "not a whole" in (bad.problem or "")

    identity = pyrage.x25519.Identity.generate()
    sealed = WalArchive(archive.repo, "sandbox", "postgres", Codec(recipients=(str(identity.to_public()),)))
    sealed.push_bytes("000000010000000000000009", b"\1" * SIZE)
    keyless = WalRehash(sealed, SIZE).check(["000000010000000000000009"])
    assert keyless.unread == ("000000010000000000000009",) and not keyless.damaged
    wrong = pyrage.x25519.Identity.generate()
    with_wrong = WalArchive(archive.repo, "sandbox", "postgres", Codec(identity=str(wrong)))
    (undecryptable,) = WalRehash(with_wrong, SIZE).check(["000000010000000000000009"]).damaged
    assert "wrong age identity" in (undecryptable.problem or "")


def test_pg_restore_errors_give_postgresql_s_message_before_the_statement() -> None:
    stderr = (
        'pg_restore: error: could not execute query: ERROR:  relation "fi_lookup" does not exist\n'
        "LINE 1:  select v from fi_lookup where k = $1 \n"
        "                       ^\n"
        "QUERY:   select v from fi_lookup where k = $1 \n"
        'CONTEXT:  SQL function "fi_val" during inlining\n'
        "Command was: CREATE INDEX fi_data_val ON public.fi_data USING btree (public.fi_val(k));\n"
    )
    assert pg_restore_error(stderr) == (
        'ERROR: relation "fi_lookup" does not exist (SQL function "fi_val" during inlining); '
        "the statement: CREATE INDEX fi_data_val ON public.fi_data USING btree (public.fi_val(k))"
    )
    assert pg_restore_error("pg_restore: error: connection to server failed: refused\n") == (
        "connection to server failed: refused"
    )
    assert pg_restore_error("something else\n") == "something else"
    assert "--exit-on-error" in RULES


def test_a_failed_logical_restore_drops_the_database_it_created_or_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[str] = []
    monkeypatch.setattr(logical_restore, "_create_database", lambda admin, name: created.append(name))
    monkeypatch.setattr(logical_restore, "_drop_database", lambda admin, name: created.remove(name))

    def fails(*_args: object, **_kw: object) -> None:
        raise ToolError('pg_restore failed: ERROR: relation "t" does not exist')

    monkeypatch.setattr(logical_restore, "restore_dump", fails)
    admin = "host=db port=5432 dbname=postgres"
    with pytest.raises(ToolError, match="the database copy it created was dropped again"):
        logical_restore.restore_new_database(admin, admin, "copy", Path("/x.dump"), None)
    assert created == []

    def cannot_drop(admin: str, name: str) -> None:
        raise OperationError("cannot connect to PostgreSQL at db:5432/postgres: refused")

    monkeypatch.setattr(logical_restore, "_drop_database", cannot_drop)
    with pytest.raises(OperationError) as left:
        logical_restore.restore_new_database(admin, admin, "copy", Path("/x.dump"), None)
    assert 'relation "t" does not exist' in left.value.message
    assert "the database copy drkit created is left on db:5432/postgres" in left.value.message
    assert left.value.hint == (
        "remove it: psql -h db -p 5432 -d postgres -c 'DROP DATABASE \"copy\" WITH (FORCE)'"
    )


def _manifest(ws: Workspace, service: str, backup_id: str, kind: BackupKind, **details: Any) -> Manifest:
    stored = Codec().encode(b"content of " + backup_id.encode())
    directory = f"sandbox/{service}/backups/{backup_id}"
    ws.repo.put(f"{directory}/data.zst", stored)
    files = (StoredFile("data.zst", len(stored), sha256(stored), 0),)
    m = Manifest(backup_id, "sandbox", service, kind, T0, T0, files, {}, details=details)
    ws.repo.put(f"{directory}/manifest.json", m.to_json())
    return m


def test_verify_finds_any_service_s_backup_by_id_and_the_newest_of_a_named_service(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    _manifest(ws, "s3", "20261125T010000Z-objects", BackupKind.OBJECTS)
    _manifest(ws, "s3", "20261125T020000Z-objects", BackupKind.OBJECTS)
    _manifest(ws, "postgres", "20261125T030000Z-logical", BackupKind.LOGICAL)
    assert choose_backup_to_verify(ws, "20261125T010000Z-objects")[1].service == "s3"
    newest = choose_backup_to_verify(ws, None, service="s3", deep=True)[1]
    assert newest.backup_id == "20261125T020000Z-objects"  # not "no complete backup": not a base
    assert choose_backup_to_verify(ws, None)[1].backup_id == "20261125T030000Z-logical"


def test_a_verify_that_could_not_read_everything_is_not_recorded_as_verified(tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    ws = _workspace(tmp_path, recipients=[str(identity.to_public())])  # no identity here
    m = _manifest(ws, "s3", "20261125T010000Z-objects", BackupKind.OBJECTS, buckets={"b": {}})
    from dataclasses import replace

    m = replace(m, encrypted=True)
    report = verify_backup(ws, ws.stack.services["s3"], m, deep=False, drkit_argv=[])
    assert report.ok and not report.complete and not report.verified
    assert not ws.repo.exists(verified_key("sandbox", "s3", m.backup_id))


def test_redis_file_records_must_point_at_stored_parts() -> None:
    record = {"path": "dump.rdb", "role": "rdb", "size": 1, "sha256": "0" * 64, "parts": ["dump.rdb.zst"]}
    files = (StoredFile("dump.rdb.zst", 1, "0" * 64, 1),)
    good = Manifest("b", "s", "redis", BackupKind.RDB, T0, T0, files, {}, details={"files": [record]})
    assert [r.status for r in verify_layout(good)] == [Status.OK]
    missing = {**record, "parts": ["dump.rdb.00001.zst"]}
    bad = Manifest("b", "s", "redis", BackupKind.RDB, T0, T0, files, {}, details={"files": [missing]})
    (result,) = verify_layout(bad)
    assert result.status is Status.FAILED and "dump.rdb.00001.zst" in result.detail
    unsafe = {**record, "path": "../etc/dump.rdb"}
    worse = Manifest("b", "s", "redis", BackupKind.RDB, T0, T0, files, {}, details={"files": [unsafe]})
    assert verify_layout(worse)[0].status is Status.FAILED
    empty = Manifest("b", "s", "redis", BackupKind.RDB, T0, T0, files, {})
    assert "no Redis file" in verify_layout(empty)[0].detail


def test_a_logical_backup_must_hold_a_dump_of_each_database_it_lists() -> None:
    from drkit.engines.postgres.verify_logical import verify_logical_layout

    files = (
        StoredFile("nchat.dump.00000.zst", 1, "0" * 64, 1),
        StoredFile("globals.sql.00000.zst", 1, "0" * 64, 1),
    )
    whole = Manifest(
        "b", "s", "postgres", BackupKind.LOGICAL, T0, T0, files, {}, details={"databases": ["nchat"]}
    )
    assert verify_logical_layout(whole).status is Status.OK
    more = Manifest(
        "b", "s", "postgres", BackupKind.LOGICAL, T0, T0, files, {}, details={"databases": ["nchat", "app"]}
    )
    result = verify_logical_layout(more)
    assert result.status is Status.FAILED and "app.dump" in result.detail
