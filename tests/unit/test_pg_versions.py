"""Version detection across PostgreSQL majors: what each build's --version prints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drkit.adapters.postgres.tools import major, require_server_major, tool_version, version_num_major
from drkit.domain.errors import UsageError


def fake_bin(tmp_path: Path, name: str, banner: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f"#!/bin/sh\necho '{banner}'\n")
    exe.chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize(
    ("banner", "version", "expected_major"),
    [
        ("pg_basebackup (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", "15.18", 15),
        ("postgres (PostgreSQL) 16.2", "16.2", 16),
        ("postgres (PostgreSQL) 18.6", "18.6", 18),
        ("postgres (PostgreSQL) 18beta1", "18", 18),
        ("pg_dump (PostgreSQL) 17.10 (Ubuntu 17.10-1.pgdg24.04+1)", "17.10", 17),
    ],
)
def test_tool_version_reads_every_build_banner(
    tmp_path: Path, banner: str, version: str, expected_major: int
) -> None:
    bin_dir = fake_bin(tmp_path, "postgres", banner)
    assert tool_version("postgres", bin_dir) == version
    assert major(tool_version("postgres", bin_dir)) == expected_major


def test_server_version_num_major() -> None:
    assert [version_num_major(v) for v in (150018, 160002, 180006, 90624)] == [15, 16, 18, 9]


def test_a_backup_of_another_major_is_refused_naming_both(tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, "postgres", "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)")
    require_server_major(bin_dir, 150018)  # same major: nothing to say
    with pytest.raises(UsageError) as refused:
        require_server_major(bin_dir, 180006)
    assert "backup is of PostgreSQL 18" in refused.value.message
    assert f"server in {bin_dir} is PostgreSQL 15" in refused.value.message


def test_no_server_binary_to_compare_with_is_not_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    require_server_major(str(tmp_path / "nowhere"), 180006)


def test_sandbox_refuses_a_bin_dir_without_the_server(tmp_path: Path) -> None:
    from drkit.sandbox.postgres import server_bin_dir

    bin_dir = fake_bin(tmp_path, "pg_ctl", "pg_ctl (PostgreSQL) 18.6")
    with pytest.raises(UsageError, match="has no executable initdb"):
        server_bin_dir(bin_dir, None)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another user")
def test_sandbox_refuses_binaries_the_database_user_cannot_execute(tmp_path: Path) -> None:
    from drkit.sandbox.postgres import server_bin_dir

    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    for name in ("initdb", "pg_ctl", "postgres"):
        fake_bin(closed, name, f"{name} (PostgreSQL) 18.6")
    bin_dir = str(closed / "bin")
    assert server_bin_dir(bin_dir, None) == bin_dir  # we (root) may
    with pytest.raises(UsageError, match=f"cannot execute {bin_dir}/postgres"):
        server_bin_dir(bin_dir, "nobody")
