"""One bad manifest does not block every restore: it is listed as damaged, with the reason,
and skipped; the other backups stay listable and findable (a filesystem repository)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.adapters.repository.fs import FsRepository
from drkit.domain.backup import BackupKind, Manifest, PostgresInfo
from drkit.domain.errors import RepositoryError
from drkit.engines.core.catalog import find_backup, list_backups
from drkit.engines.core.layout import backup_dir, manifest_key
from tests.conftest import run_drkit

T0 = datetime(2026, 2, 9, 1, 0, tzinfo=UTC)


def good(backup_id: str, hour: int) -> Manifest:
    return Manifest(
        backup_id=backup_id,
        stack="demo",
        service="postgres",
        kind=BackupKind.BASE,
        started_at=T0 + timedelta(hours=hour),
        finished_at=T0 + timedelta(hours=hour, minutes=5),
        files=(),
        tool_versions={},
        postgres=PostgresInfo(
            start_lsn="0/2000028",
            stop_lsn="0/2000100",
            timeline=1,
            wal_segment_size=16 * 1024 * 1024,
            server_version=150000,
            system_identifier="7300000000000000001",
        ),
    )


def as_dict(backup_id: str) -> dict:
    return good(backup_id, 2).to_dict()


def with_(stored_as: str, **changes: object) -> bytes:
    data = as_dict(stored_as)
    data.update(changes)
    return json.dumps(data).encode()


def without(backup_id: str, field: str) -> bytes:
    data = as_dict(backup_id)
    del data[field]
    return json.dumps(data).encode()


# backup id -> (manifest bytes, a phrase the reason must contain)
DAMAGE: dict[str, tuple[bytes, str]] = {
    "20260209T020000Z-base": (b'{"backup_id": "20260209T020000Z-ba', "unreadable"),
    "20260209T020100Z-base": (without("20260209T020100Z-base", "finished_at"), "missing field 'finished_at'"),
    "20260209T020200Z-base": (with_("20260209T020200Z-base", files=7), "unreadable"),
    "20260209T020300Z-base": (with_("20260209T020300Z-base", started_at=12), "unreadable"),
    "20260209T020400Z-base": (b"[1, 2, 3]", "unreadable"),
    "20260209T020500Z-base": (
        with_("20260209T020500Z-base", finished_at="2026-02-09T02:05:00"),
        "no time zone",
    ),
    "20260209T020600Z-base": (with_("20260209T020600Z-base", format=99), "newer than this drkit"),
    "20260209T020700Z-base": (
        with_("20260209T020700Z-base", backup_id="elsewhere"),
        "not the one it is stored as",
    ),
    "20260209T020800Z-base": (b"\xff\xfe not text", "unreadable"),
}
GOOD = ("20260209T010000Z-base", "20260209T030000Z-base")


@pytest.fixture
def repo(tmp_path: Path) -> FsRepository:
    repo = FsRepository(tmp_path / "repo")
    for hour, backup_id in zip((1, 3), GOOD, strict=True):
        repo.put(manifest_key("demo", "postgres", backup_id), good(backup_id, hour).to_json())
    for backup_id, (raw, _why) in DAMAGE.items():
        repo.put(f"{backup_dir('demo', 'postgres', backup_id)}/base.tar.zst", b"data")
        repo.put(manifest_key("demo", "postgres", backup_id), raw)
    return repo


def test_damaged_manifests_are_listed_with_the_reason_and_skipped(repo: FsRepository) -> None:
    listing = list_backups(repo, "demo", "postgres")
    assert [m.backup_id for m in listing.complete] == list(GOOD)
    assert listing.incomplete == ()  # never cleaned up as an interrupted backup
    reasons = {d.backup_id: d.reason for d in listing.damaged}
    assert set(reasons) == set(DAMAGE)
    for backup_id, (_raw, why) in DAMAGE.items():
        assert why in reasons[backup_id], (backup_id, reasons[backup_id])


def test_the_other_backups_are_still_found_and_a_damaged_one_says_why(repo: FsRepository) -> None:
    assert find_backup(repo, "demo", ["postgres"], None).backup_id == GOOD[-1]
    assert find_backup(repo, "demo", ["postgres"], GOOD[0]).backup_id == GOOD[0]
    with pytest.raises(RepositoryError, match="20260209T020000Z-base is damaged: .*unreadable"):
        find_backup(repo, "demo", ["postgres"], "20260209T020000Z-base")


def test_backups_list_shows_damaged_ones_in_text_and_json(repo: FsRepository, tmp_path: Path) -> None:
    config = tmp_path / "stack.yaml"
    config.write_text(
        "stack: demo\nrepositories:\n  local: {type: fs, path: ./repo}\n"
        "services:\n  postgres: {kind: postgres}\n"
    )
    text = run_drkit("backups", "list", config=config)
    assert text.code == 0, text.stderr
    assert all(b in text.stdout for b in GOOD)
    assert "damaged (skipped): postgres/20260209T020100Z-base: " in text.stdout
    as_json = run_drkit("--output", "json", "backups", "list", config=config)
    assert as_json.code == 0, as_json.stderr
    data = as_json.json()
    assert [b["backup_id"] for b in data["backups"]] == list(GOOD)
    assert {d["backup_id"] for d in data["damaged"]} == set(DAMAGE)
    assert all(d["service"] == "postgres" and d["reason"] for d in data["damaged"])


def test_one_unreadable_file_is_damaged_but_an_unreadable_repository_is_an_error(
    repo: FsRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_get = FsRepository.get
    broken = manifest_key("demo", "postgres", GOOD[0])

    def get_failing_one(self: FsRepository, key: str) -> bytes:
        if key == broken:
            raise RepositoryError("cannot read it: I/O error") from OSError(5, "I/O error")
        return real_get(self, key)

    monkeypatch.setattr(FsRepository, "get", get_failing_one)
    listing = list_backups(repo, "demo", "postgres")
    assert [m.backup_id for m in listing.complete] == [GOOD[1]]
    assert "I/O error" in {d.backup_id: d.reason for d in listing.damaged}[GOOD[0]]

    def get_failing_all(self: FsRepository, key: str) -> bytes:
        raise RepositoryError("cannot read the repository: I/O error") from OSError(5, "I/O error")

    monkeypatch.setattr(FsRepository, "get", get_failing_all)
    with pytest.raises(RepositoryError, match="cannot read the repository"):
        list_backups(repo, "demo", "postgres")


def test_a_manifest_replaced_by_a_link_is_damaged_never_an_incomplete_backup_to_clean(
    repo: FsRepository, tmp_path: Path
) -> None:
    """Listed as incomplete, the backup would be removed whole by the next backup's cleanup."""
    import os

    key = manifest_key("demo", "postgres", GOOD[0])
    repo.put(f"{backup_dir('demo', 'postgres', GOOD[0])}/base.00000.tar.zst", b"its data")
    target = tmp_path / "elsewhere.json"
    target.write_bytes(repo.get(key))
    (tmp_path / "repo" / key).unlink()
    os.symlink(target, tmp_path / "repo" / key)
    listing = list_backups(repo, "demo", "postgres")
    assert GOOD[0] not in listing.incomplete
    assert any(d.backup_id == GOOD[0] and "symbolic link" in d.reason for d in listing.damaged)
