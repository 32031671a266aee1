"""Signed manifests and sets: with a sign_key, an unsigned, changed or moved manifest is
refused; without one, everything works as before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.config.loader import load_stack
from drkit.domain.backup import BackupKind, Manifest, StoredFile
from drkit.domain.errors import ConfigError, IntegrityError, RepositoryError
from drkit.domain.sets import RestoreSet
from drkit.engines.core.catalog import find_backup, list_backups, read_manifest
from drkit.engines.core.commit import commit_manifest
from drkit.engines.core.layout import manifest_key
from drkit.engines.core.retention import delete_backup
from drkit.engines.core.set_refs import list_sets, set_key
from drkit.engines.core.signing import SigningRepository
from drkit.engines.core.workspace import Workspace, open_workspace

KEY = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 2, 9, 14, 30, tzinfo=UTC)


def stack_yaml(tmp_path: Path, sign_key: str | None) -> Path:
    signing = f", sign_key: {sign_key}" if sign_key else ""
    path = tmp_path / "stack.yaml"
    path.write_text(
        "version: 1\nstack: demo\n"
        f"state_dir: {tmp_path / 'state'}\n"
        f"repositories:\n  local: {{type: fs, path: {tmp_path / 'repo'}{signing}}}\n"
        "services:\n  cache: {kind: redis, url: 'redis://127.0.0.1:6379/0'}\n"
    )
    return path


def workspace(tmp_path: Path, sign_key: str | None) -> Workspace:
    return open_workspace(load_stack(stack_yaml(tmp_path, sign_key)))


def manifest(backup_id: str = "20260209T143000Z-rdb") -> Manifest:
    files = (StoredFile("dump.rdb.zst", 10, "ab" * 32, 20),)
    return Manifest(backup_id, "demo", "cache", BackupKind.RDB, NOW, NOW, files, {"redis": "7"})


def commit(ws: Workspace, m: Manifest) -> None:
    """Store the manifest's files (the commit point checks they are there), then commit it."""
    for f in m.files:
        ws.repo.put(f"{m.stack}/{m.service}/backups/{m.backup_id}/{f.name}", b"x" * f.size)
    commit_manifest(ws, m)


@pytest.fixture
def signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("DRKIT_TEST_SIGN_KEY", KEY)
    ws = workspace(tmp_path, "env:DRKIT_TEST_SIGN_KEY")
    assert isinstance(ws.repo, SigningRepository)
    return ws


def raw_path(tmp_path: Path, key: str) -> Path:
    return tmp_path / "repo" / key


def test_a_signed_manifest_reads_back(signed: Workspace, tmp_path: Path) -> None:
    commit(signed, manifest())
    key = manifest_key("demo", "cache", "20260209T143000Z-rdb")
    assert raw_path(tmp_path, key + ".sig").read_text().startswith("hmac-sha256:")
    assert [m.backup_id for m in list_backups(signed.repo, "demo", "cache").complete] == [
        "20260209T143000Z-rdb"
    ]


def test_a_changed_signed_manifest_is_refused(signed: Workspace, tmp_path: Path) -> None:
    commit(signed, manifest())
    path = raw_path(tmp_path, manifest_key("demo", "cache", "20260209T143000Z-rdb"))
    path.write_bytes(path.read_bytes().replace(b"ab" * 32, b"cd" * 32))
    with pytest.raises(IntegrityError, match="manifest.json has a wrong signature"):
        read_manifest(signed.repo, "demo", "cache", "20260209T143000Z-rdb")


def test_an_unsigned_manifest_is_refused_when_a_key_is_set(signed: Workspace, tmp_path: Path) -> None:
    key = manifest_key("demo", "cache", "20260209T143000Z-rdb")
    path = raw_path(tmp_path, key)
    path.parent.mkdir(parents=True)
    path.write_bytes(manifest().to_json())  # what an intruder without the key can write
    with pytest.raises(IntegrityError, match="is not signed, and repository 'local' sign_key"):
        read_manifest(signed.repo, "demo", "cache", "20260209T143000Z-rdb")
    listing = list_backups(signed.repo, "demo", "cache")  # listed as damaged, never as a backup
    assert listing.complete == ()
    assert [d.backup_id for d in listing.damaged] == ["20260209T143000Z-rdb"]
    assert "is not signed" in listing.damaged[0].reason
    with pytest.raises(RepositoryError, match="20260209T143000Z-rdb is damaged: .* is not signed"):
        find_backup(signed.repo, "demo", ["cache"], "20260209T143000Z-rdb")


def test_a_manifest_signed_with_another_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRKIT_TEST_SIGN_KEY", "another key, also long enough")
    commit(workspace(tmp_path, "env:DRKIT_TEST_SIGN_KEY"), manifest())
    monkeypatch.setenv("DRKIT_TEST_SIGN_KEY", KEY)
    listing = list_backups(workspace(tmp_path, "env:DRKIT_TEST_SIGN_KEY").repo, "demo", "cache")
    assert listing.complete == ()
    assert "wrong signature" in listing.damaged[0].reason


def test_a_signed_manifest_moved_to_another_backup_is_refused(signed: Workspace, tmp_path: Path) -> None:
    commit(signed, manifest())
    a = raw_path(tmp_path, manifest_key("demo", "cache", "20260209T143000Z-rdb"))
    b = raw_path(tmp_path, manifest_key("demo", "cache", "20260210T143000Z-rdb"))
    b.parent.mkdir(parents=True)
    b.write_bytes(a.read_bytes())
    Path(str(b) + ".sig").write_bytes(Path(str(a) + ".sig").read_bytes())
    with pytest.raises(IntegrityError, match="20260210T143000Z-rdb/manifest.json has a wrong signature"):
        read_manifest(signed.repo, "demo", "cache", "20260210T143000Z-rdb")


def test_sets_are_signed_and_checked(signed: Workspace, tmp_path: Path) -> None:
    record = RestoreSet("20260209T143000Z", "demo", NOW, "drkit-x", "0/3000000", {"cache": "b"}, NOW)
    signed.repo.put(set_key("demo", record.set_id), record.to_json(), overwrite=False)
    assert [s.set_id for s in list_sets(signed)] == ["20260209T143000Z"]
    path = raw_path(tmp_path, set_key("demo", record.set_id))
    path.write_bytes(path.read_bytes().replace(b'"b"', b'"c"'))
    with pytest.raises(IntegrityError, match="sets/20260209T143000Z.json has a wrong signature"):
        list_sets(signed)


def test_deleting_a_backup_removes_its_signature(signed: Workspace, tmp_path: Path) -> None:
    commit(signed, manifest())
    delete_backup(signed, "cache", "20260209T143000Z-rdb")
    assert not (tmp_path / "repo" / "demo" / "cache" / "backups" / "20260209T143000Z-rdb").exists()


def test_without_a_key_nothing_is_signed_or_checked(tmp_path: Path) -> None:
    ws = workspace(tmp_path, None)
    assert not isinstance(ws.repo, SigningRepository)
    commit(ws, manifest())
    key = manifest_key("demo", "cache", "20260209T143000Z-rdb")
    assert not raw_path(tmp_path, key + ".sig").exists()
    assert len(list_backups(ws.repo, "demo", "cache").complete) == 1


def test_a_short_key_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRKIT_TEST_SIGN_KEY", "short")
    with pytest.raises(ConfigError, match="too short"):
        workspace(tmp_path, "env:DRKIT_TEST_SIGN_KEY")


def test_a_key_that_cannot_be_read_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRKIT_TEST_SIGN_KEY", raising=False)
    with pytest.raises(ConfigError, match="sign_key"):
        workspace(tmp_path, "env:DRKIT_TEST_SIGN_KEY")
    # The WAL commands load secrets leniently; they still never read an unchecked manifest.
    lenient = open_workspace(
        load_stack(stack_yaml(tmp_path, "env:DRKIT_TEST_SIGN_KEY"), strict_secrets=False)
    )
    path = raw_path(tmp_path, manifest_key("demo", "cache", "20260209T143000Z-rdb"))
    path.parent.mkdir(parents=True)
    path.write_bytes(manifest().to_json())
    with pytest.raises(ConfigError, match="is not readable"):
        list_backups(lenient.repo, "demo", "cache")
