"""archive_command / restore_command survive any path: every word shell-quoted, `%` doubled."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from drkit.adapters.postgres.recovery_conf import (
    pg_shell_command,
    quote,
    restore_command,
    write_recovery_settings,
)
from drkit.domain.errors import UsageError
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR, prefetch_restore_command

HOSTILE_DIR = "dr kit \"q\" 's' $(touch pwned) `x` %p %f ; |&"


def postgres_substitutes(command: str, f: str, p: str) -> str:
    """What PostgreSQL does before handing the command to /bin/sh."""
    return re.sub(r"%[fpr%]", lambda m: {"%f": f, "%p": p, "%r": "", "%%": "%"}[m.group()], command)


def run_sh(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", command], check=False, cwd=cwd, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def echo_argv(tmp_path: Path) -> list[str]:
    """A stand-in for `python -m drkit`: prints the arguments it was given, as JSON."""
    script = tmp_path / HOSTILE_DIR / "argv.py"
    script.parent.mkdir()
    script.write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    return [sys.executable, str(script)]


def test_restore_command_passes_every_path_through_the_shell_unchanged(
    tmp_path: Path, echo_argv: list[str]
) -> None:
    config = str(tmp_path / HOSTILE_DIR / "stack.yaml")
    command = restore_command(echo_argv, config, "postgres")
    shell = postgres_substitutes(command, "000000010000000000000002", "pg_wal/RECOVERYXLOG")
    done = run_sh(shell, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "--config",
        config,
        "wal-fetch",
        "--service",
        "postgres",
        "000000010000000000000002",
        "pg_wal/RECOVERYXLOG",
    ]
    assert not (tmp_path / "pwned").exists()


def test_archive_command_passes_the_config_path_unchanged(tmp_path: Path, echo_argv: list[str]) -> None:
    config = str(tmp_path / HOSTILE_DIR / "stack.yaml")
    shell = postgres_substitutes(
        pg_shell_command([*echo_argv, "--config", config, "wal-push"], "%p"), "x", "pg_wal/0001"
    )
    done = run_sh(shell, tmp_path)
    assert json.loads(done.stdout) == ["--config", config, "wal-push", "pg_wal/0001"]
    assert not (tmp_path / "pwned").exists()


def test_the_prefetch_wrapper_copies_from_a_spool_with_any_name(tmp_path: Path, echo_argv: list[str]) -> None:
    data_dir = tmp_path / HOSTILE_DIR / "data"
    (data_dir / PREFETCH_DIR).mkdir(parents=True)
    (data_dir / "pg_wal").mkdir()
    (data_dir / PREFETCH_DIR / "000000010000000000000003").write_bytes(b"segment")
    fallback = restore_command(echo_argv, "c", "postgres")
    command = prefetch_restore_command(data_dir, fallback)
    done = run_sh(postgres_substitutes(command, "000000010000000000000003", "pg_wal/RECOVERYXLOG"), data_dir)
    assert done.returncode == 0, done.stderr
    assert (data_dir / "pg_wal/RECOVERYXLOG").read_bytes() == b"segment"
    assert (data_dir / PREFETCH_DIR / ".requested").read_text().strip() == "000000010000000000000003"
    missing = run_sh(postgres_substitutes(command, "000000010000000000000004", "pg_wal/X"), data_dir)
    assert json.loads(missing.stdout)[-2:] == ["000000010000000000000004", "pg_wal/X"]
    assert not (tmp_path / "pwned").exists()


def test_configuration_strings_escape_quotes_and_backslashes() -> None:
    assert quote("it's a \\path") == "'it''s a \\\\path'"
    with pytest.raises(UsageError, match="line break"):
        quote("a\nrestore_command = 'evil'")


def test_recovery_settings_are_not_written_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside.conf"
    outside.write_text("# untouched\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "postgresql.auto.conf").symlink_to(outside)
    with pytest.raises(OSError):
        write_recovery_settings(data_dir, {"restore_command": "x"}, comment="drkit")
    assert outside.read_text() == "# untouched\n"
    (data_dir / "postgresql.auto.conf").unlink()
    (data_dir / "recovery.signal").symlink_to(tmp_path / "made-through-link")
    with pytest.raises(OSError):
        write_recovery_settings(data_dir, {"restore_command": "x"}, comment="drkit")
    assert not (tmp_path / "made-through-link").exists()
