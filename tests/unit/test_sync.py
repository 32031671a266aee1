"""`drkit sync` between two filesystem repositories, on a synthetic repository: what is
copied (committed backups, WAL with sidecars, objects data, sets, journals) and what is not
(a backup still being written), the manifest last, incremental runs, a resumed run, age
encryption to a repository that requires it, and `verify --repo` on the copy."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.fs import FsRepository
from drkit.config.loader import load_stack
from drkit.domain.backup import BackupKind, Manifest, StoredFile
from drkit.domain.checks import Status
from drkit.domain.errors import IntegrityError, UsageError
from drkit.domain.sets import RestoreSet
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.ops.sync import sync
from drkit.engines.stack.verify import verify_repository

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
WAL = "sandbox/postgres/wal/00000001/000000010000000000000001"
OBJECT = "sandbox/redis/objects/b/packs/run-00000.pack.zst"


def _stack(tmp_path: Path, *, encrypt: str | None = None, identity: str | None = None) -> Path:
    copy: dict[str, Any] = {"type": "fs", "path": str(tmp_path / "copy")}
    if encrypt:
        copy["encryption"] = {"recipients": [encrypt]}
        if identity:
            (tmp_path / "key.txt").write_text(identity + "\n")
            copy["encryption"]["identity"] = f"file:{tmp_path / 'key.txt'}"
    config = {
        "version": 1,
        "stack": "sandbox",
        "state_dir": str(tmp_path / "state"),
        "repository": "local",
        "repositories": {"local": {"type": "fs", "path": str(tmp_path / "repo")}, "copy": copy},
        "services": {
            "redis": {"kind": "redis", "url": "redis://127.0.0.1:1"},
            "postgres": {"kind": "postgres", "dsn": "host=127.0.0.1 port=1"},
        },
    }
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _backup(ws: Workspace, backup_id: str, *, commit: bool = True) -> Manifest:
    raw = os.urandom(3000) + b"redis" * 1000
    stored = Codec().encode(raw)
    directory = f"sandbox/redis/backups/{backup_id}"
    ws.repo.put(f"{directory}/dump.rdb.zst", stored)
    files = (StoredFile("dump.rdb.zst", len(stored), sha256(stored), len(raw)),)
    record = {
        "path": "dump.rdb",
        "role": "rdb",
        "size": len(raw),
        "sha256": sha256(raw),
        "parts": ["dump.rdb.zst"],
    }
    details = {"files": [record]}  # what a restore follows (verify checks it)
    m = Manifest(
        backup_id, "sandbox", "redis", BackupKind.RDB, T0, T0, files, {"redis": "7"}, details=details
    )
    if commit:
        ws.repo.put(f"{directory}/manifest.json", m.to_json())
    else:
        ws.repo.put(f"{directory}/lease.json", b"{}")
    return m


def _fill(ws: Workspace) -> Manifest:
    m = _backup(ws, "20261125T020000Z-rdb")
    _backup(ws, "20261125T030000Z-rdb", commit=False)  # being written: never copied
    ws.repo.put(f"{WAL}.zst", Codec().encode(b"w" * 5000))
    ws.repo.put(f"{WAL}.sha256", sha256(b"w" * 5000).encode())
    ws.repo.put(OBJECT, Codec().encode(b"o" * 100))
    s = RestoreSet("20261125T020000Z-set", "sandbox", T0, "rp", "0/0", {"redis": m.backup_id}, T0)
    ws.repo.put("sandbox/sets/20261125T020000Z-set.json", s.to_json())
    ws.repo.put("sandbox/journals/run-1.json", json.dumps({"run": 1}).encode())
    return m


def test_a_sync_copies_what_is_committed_and_a_second_copies_nothing(tmp_path: Path) -> None:
    ws = open_workspace(load_stack(_stack(tmp_path)))
    m = _fill(ws)
    (report,) = sync(ws)
    copy = FsRepository(str(tmp_path / "copy"))
    keys = set(copy.list("sandbox/"))
    assert f"sandbox/redis/backups/{m.backup_id}/manifest.json" in keys
    assert {f"{WAL}.zst", f"{WAL}.sha256", OBJECT, "sandbox/journals/run-1.json"} <= keys
    assert "sandbox/sets/20261125T020000Z-set.json" in keys
    assert not [k for k in keys if "T030000Z" in k], "a backup being written was copied"
    assert report.copied == 7 and report.backups == [f"redis/{m.backup_id}"]
    assert copy.get(f"sandbox/redis/backups/{m.backup_id}/manifest.json") == m.to_json()

    (again,) = sync(ws)
    assert (again.copied, again.skipped) == (0, 7)


def test_a_run_interrupted_before_the_manifest_resumes_with_what_is_missing(tmp_path: Path) -> None:
    ws = open_workspace(load_stack(_stack(tmp_path)))
    m = _fill(ws)
    sync(ws)
    copy = FsRepository(str(tmp_path / "copy"))
    directory = f"sandbox/redis/backups/{m.backup_id}"
    copy.delete(f"{directory}/manifest.json")  # killed after the file, before the commit point
    copy.delete(OBJECT)
    ws_copy = open_workspace(load_stack(_stack(tmp_path)), repository="copy")
    assert verify_repository(ws_copy).incomplete == (f"redis/{m.backup_id}",)

    (resumed,) = sync(ws)
    assert resumed.copied == 2  # the objects pack and the manifest; the file was there
    assert copy.exists(f"{directory}/manifest.json") and copy.exists(OBJECT)


def test_a_damaged_source_file_is_not_copied(tmp_path: Path) -> None:
    ws = open_workspace(load_stack(_stack(tmp_path)))
    m = _fill(ws)
    key = f"sandbox/redis/backups/{m.backup_id}/dump.rdb.zst"
    data = bytearray(ws.repo.get(key))
    data[10] ^= 1
    ws.repo.put(key, bytes(data))
    with pytest.raises(IntegrityError, match="dump.rdb.zst"):
        sync(ws)
    assert not FsRepository(str(tmp_path / "copy")).exists(
        f"sandbox/redis/backups/{m.backup_id}/manifest.json"
    )


def test_an_encrypted_copy_has_its_own_manifest_and_decrypts_to_the_source(tmp_path: Path) -> None:
    key = pyrage.x25519.Identity.generate()
    stack = load_stack(_stack(tmp_path, encrypt=str(key.to_public()), identity=str(key)))
    ws = open_workspace(stack)
    m = _fill(ws)
    sync(ws)
    ws_copy = open_workspace(stack, repository="copy")
    copied = Manifest.from_json(ws_copy.repo.get(f"sandbox/redis/backups/{m.backup_id}/manifest.json"))
    assert copied.encrypted and copied.files[0].sha256 != m.files[0].sha256
    assert copied.files[0].raw_size == m.files[0].raw_size
    assert copied.details["encrypted_copy"]["stored_sha256"] == {"dump.rdb.zst": m.files[0].sha256}
    stored = ws_copy.repo.get(f"sandbox/redis/backups/{m.backup_id}/dump.rdb.zst")
    assert stored.startswith(b"age-encryption.org/")
    plain = ws.repo.get(f"sandbox/redis/backups/{m.backup_id}/dump.rdb.zst")
    assert ws_copy.codec.decode(stored, name="dump.rdb.zst") == Codec().decode(plain, name="x.zst")
    assert ws_copy.repo.get(OBJECT).startswith(b"age-encryption.org/")
    assert ws_copy.repo.get(f"{WAL}.sha256") == ws.repo.get(f"{WAL}.sha256")  # sidecars stay plain
    assert verify_repository(ws_copy).ok

    (again,) = sync(ws)
    assert again.copied == 0


def test_verify_repo_names_a_changed_byte_and_a_set_whose_backup_is_gone(tmp_path: Path) -> None:
    stack = load_stack(_stack(tmp_path))
    ws = open_workspace(stack)
    m = _fill(ws)
    sync(ws)
    ws_copy = open_workspace(stack, repository="copy")
    assert verify_repository(ws_copy).ok
    path = tmp_path / "copy" / "sandbox" / "redis" / "backups" / m.backup_id / "dump.rdb.zst"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    result = verify_repository(ws_copy)
    assert not result.ok
    failed = [c for r in result.backups for c in r.results if c.status is Status.FAILED]
    assert [c.name for c in failed] == ["file dump.rdb.zst"]

    ws_copy.repo.delete_tree(f"sandbox/redis/backups/{m.backup_id}/")
    (set_check,) = verify_repository(ws_copy).sets
    assert set_check.status is Status.FAILED and m.backup_id in set_check.detail


def test_sync_refuses_the_primary_and_an_unknown_repository(tmp_path: Path) -> None:
    ws = open_workspace(load_stack(_stack(tmp_path)))
    with pytest.raises(UsageError, match="primary"):
        sync(ws, "local")
    with pytest.raises(UsageError, match="known: copy, local"):
        sync(ws, "elsewhere")


def test_verify_repo_finds_a_changed_byte_in_a_wal_segment(tmp_path: Path) -> None:
    stack = load_stack(_stack(tmp_path))
    ws = open_workspace(stack)
    _fill(ws)
    sync(ws)
    ws_copy = open_workspace(stack, repository="copy")
    (wal,) = verify_repository(ws_copy).wal
    assert wal.status is Status.OK and wal.detail.startswith("1 WAL file(s) re-read and intact")
    data = bytearray(ws_copy.repo.get(f"{WAL}.zst"))
    data[-6] ^= 1
    ws_copy.repo.put(f"{WAL}.zst", bytes(data))
    result = verify_repository(ws_copy)
    assert not result.ok and result.wal[0].status is Status.FAILED and f"{WAL}.zst" in result.wal[0].detail


def test_a_journal_rewritten_since_is_copied_again(tmp_path: Path) -> None:
    ws = open_workspace(load_stack(_stack(tmp_path)))
    _fill(ws)
    sync(ws)
    ws.repo.put("sandbox/journals/run-1.json", json.dumps({"run": 1, "finished": True}).encode())
    (again,) = sync(ws)
    assert again.copied == 1
    copy = FsRepository(str(tmp_path / "copy"))
    assert json.loads(copy.get("sandbox/journals/run-1.json"))["finished"] is True


def test_a_planted_link_is_never_copied_and_verify_repo_lists_every_link_and_leftover(
    tmp_path: Path,
) -> None:
    """The database user can write the repository; drkit runs as root. A link planted there
    (a file and a directory) must not carry a secret off-site, and `verify --repo` names it."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"root's secret")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.zst").write_bytes(b"more secrets")
    ws = open_workspace(load_stack(_stack(tmp_path)))
    _fill(ws)
    repo = tmp_path / "repo" / "sandbox"
    os.symlink(secret, repo / "redis" / "notes.zst")
    os.symlink(outside, repo / "postgres" / "wal" / "00000002")
    (repo / "postgres" / "wal" / "00000001" / ".000000010000000000000002.zst.1a2b3c4d.tmp").write_bytes(
        b"torn"
    )

    (report,) = sync(ws)
    copied = tmp_path / "copy" / "sandbox"
    assert not (copied / "redis" / "notes.zst").exists()
    assert not (copied / "postgres" / "wal" / "00000002").exists()
    assert not [
        p for p in copied.rglob("*") if p.is_file() and p.read_bytes() in (b"root's secret", b"more secrets")
    ]
    assert any("notes.zst" in item for item in report.not_files)

    result = verify_repository(ws)
    assert not result.ok
    found = {(s.key, s.kind.value) for s in result.strays}
    assert found == {
        ("sandbox/redis/notes.zst", "link"),
        ("sandbox/postgres/wal/00000002", "link"),
        ("sandbox/postgres/wal/00000001/.000000010000000000000002.zst.1a2b3c4d.tmp", "temporary"),
    }
    assert {s.key for s in result.damage} == {"sandbox/redis/notes.zst", "sandbox/postgres/wal/00000002"}
    from tests.conftest import run_drkit

    cli = run_drkit("verify", "--repo", "local", config=tmp_path / "stack.yaml")
    assert cli.code == 3, cli.stdout + cli.stderr
    assert "sandbox/redis/notes.zst: symbolic link to" in cli.stdout
    assert ".000000010000000000000002.zst.1a2b3c4d.tmp: temporary file" in cli.stdout


def _pg_backup(ws: Workspace, backup_id: str, day: int, parent: Manifest | None) -> Manifest:
    from dataclasses import replace
    from datetime import timedelta

    from drkit.domain.backup import PostgresInfo

    raw = os.urandom(2000)
    stored = Codec().encode(raw)
    directory = f"sandbox/postgres/backups/{backup_id}"
    ws.repo.put(f"{directory}/base.00000.tar.zst", stored)
    files = (StoredFile("base.00000.tar.zst", len(stored), sha256(stored), len(raw)),)
    pg = PostgresInfo(f"0/{day + 1}000028", f"0/{day + 1}000100", 1, 16 << 20, 180006, "7001")
    if parent is not None:
        pp = parent.require_postgres()
        pg = replace(pg, incremental="native", parent=parent.backup_id, chain=(*pp.chain, parent.backup_id))
    at = T0 + timedelta(days=day)
    m = Manifest(backup_id, "sandbox", "postgres", BackupKind.BASE, at, at, files, {}, postgres=pg)
    ws.repo.put(f"{directory}/manifest.json", m.to_json())
    return m


def test_sync_copies_chains_whole_and_no_incremental_whose_chain_is_broken(tmp_path: Path) -> None:
    ws = open_workspace(load_stack(_stack(tmp_path)))
    full = _pg_backup(ws, "20261125T020000Z-base", 0, None)
    first = _pg_backup(ws, "20261126T020000Z-incr", 1, full)
    second = _pg_backup(ws, "20261127T020000Z-incr", 2, first)
    _pg_backup(ws, "20261128T020000Z-incr", 3, second)
    ws.repo.put(f"sandbox/postgres/backups/{second.backup_id}/manifest.json", b"{ damaged")
    report = sync(ws, "copy")[0]
    copied = sorted(b for b in report.backups if b.startswith("postgres/"))
    assert copied == [f"postgres/{full.backup_id}", f"postgres/{first.backup_id}"]
    broken = [n for n in report.not_copied if "20261128T020000Z-incr" in n]
    assert broken and f"broken at {second.backup_id}" in broken[0]
    assert not (tmp_path / "copy/sandbox/postgres/backups/20261128T020000Z-incr").exists()
