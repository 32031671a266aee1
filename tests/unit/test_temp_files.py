"""No fixed temporary names in directories a service user owns: a planted symlink at the old
name must not be written through (drkit runs as root; the directory is the service's)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.redis.restore import Placement, _place
from drkit.infra.atomic import write_atomic
from drkit.infra.ownership import chown_tree

SEG = "000000010000000000000003"


def planted(tmp_path: Path, directory: Path, name: str) -> Path:
    canary = tmp_path / "canary"
    canary.write_bytes(b"original")
    (directory / name).symlink_to(canary)
    return canary


def test_wal_fetch_does_not_write_through_a_planted_temporary_name(tmp_path: Path) -> None:
    archive = WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec())
    archive.push_bytes(SEG, b"segment" * 100)
    pg_wal = tmp_path / "pg_wal"
    pg_wal.mkdir()
    canary = planted(tmp_path, pg_wal, "RECOVERYXLOG.drkit-tmp")
    assert archive.fetch(SEG, pg_wal / "RECOVERYXLOG")
    assert (pg_wal / "RECOVERYXLOG").read_bytes() == b"segment" * 100
    assert canary.read_bytes() == b"original"


def test_redis_placement_does_not_write_through_a_planted_temporary_name(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    canary = planted(tmp_path, data_dir, ".dump.rdb.drkit-tmp")
    service = Service(name="redis", kind="redis", runtime=RuntimeSpec(type="local"))
    _place(tmp_path, [Placement("dump.rdb", content=b"REDIS0011")], data_dir, service)
    assert (data_dir / "dump.rdb").read_bytes() == b"REDIS0011"
    assert canary.read_bytes() == b"original"


def test_write_atomic_leaves_no_temporary_file_and_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "d" / "state.json"
    write_atomic(target, b"{}", mode=0o640)
    assert target.read_bytes() == b"{}"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_chown_tree_of_a_symlink_to_a_directory_changes_the_link_only(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret").write_text("x")
    link = tmp_path / "spool"
    link.symlink_to(elsewhere)
    chown_tree(link, "postgres")
    assert (elsewhere / "secret").stat().st_uid == 0
    assert elsewhere.stat().st_uid == 0
    assert link.lstat().st_uid == pwd.getpwnam("postgres").pw_uid
