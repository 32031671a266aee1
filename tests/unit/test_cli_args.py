"""The command line contract: global options anywhere, help, and exit codes for usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from drkit.cli.argv import hoist_global_options
from tests.conftest import run_drkit


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["backups", "list", "--output", "json"], ["--output", "json", "backups", "list"]),
        (["backups", "list", "-o", "json"], ["-o", "json", "backups", "list"]),
        (["backups", "list", "--output=json"], ["--output=json", "backups", "list"]),
        (
            ["restore", "postgres", "--to", "/srv/r", "--yes", "--config", "s.yaml"],
            ["--yes", "--config", "s.yaml", "restore", "postgres", "--to", "/srv/r"],
        ),
        (
            ["--config", "s.yaml", "backup", "--dry-run", "postgres"],
            ["--config", "s.yaml", "--dry-run", "backup", "postgres"],
        ),
        (["sandbox", "status", "--debug", "-y"], ["--debug", "-y", "sandbox", "status"]),
    ],
)
def test_hoist_global_options_moves_them_to_the_front(argv: list[str], expected: list[str]) -> None:
    assert hoist_global_options(argv) == expected


def test_hoist_keeps_everything_after_a_double_dash() -> None:
    argv = ["wal-push", "--output", "json", "--", "--yes", "--output", "x"]
    assert hoist_global_options(argv) == ["--output", "json", "wal-push", "--", "--yes", "--output", "x"]


def test_hoist_leaves_a_dangling_valued_option_for_the_parser_to_report() -> None:
    assert hoist_global_options(["backups", "list", "--output"]) == ["backups", "list", "--output"]


def test_hoist_keeps_the_order_of_everything_else() -> None:
    argv = ["restore", "postgres", "--target-time", "2026-02-09 14:30:00Z", "--to", "/srv/r"]
    assert hoist_global_options(argv) == argv


def test_help_exits_0_and_lists_the_commands() -> None:
    result = run_drkit("--help")
    assert result.code == 0
    for command in ("backup", "backups", "restore", "wal-push", "wal-fetch", "sandbox"):
        assert command in result.stdout


def test_output_json_after_the_sub_command_is_honoured(tmp_path: Path) -> None:
    config = tmp_path / "stack.yaml"
    config.write_text(
        "stack: demo\nrepositories:\n  local: {type: fs, path: ./repo}\n"
        "services:\n  postgres: {kind: postgres}\n"
    )
    result = run_drkit("backups", "list", "--output", "json", config=config)
    assert result.code == 0, result.stderr
    assert result.json() == {
        "backups": [],
        "incomplete": [],
        "damaged": [],
        "broken_chains": [],
        "sets": [],
        "windows": [
            {
                "service": "postgres",
                "earliest": None,
                "latest": None,
                "continuous": False,
                "points": 0,
                "detail": "no backup",
            }
        ],
    }


def test_an_unknown_command_exits_2() -> None:
    result = run_drkit("no-such-command")
    assert result.code == 2
    assert "no-such-command" in result.stderr
    assert "unexpected" not in result.stderr


def test_an_unknown_option_exits_2() -> None:
    result = run_drkit("version", "--no-such-option")
    assert result.code == 2


def test_a_bad_output_format_exits_2() -> None:
    result = run_drkit("--output", "xml", "version")
    assert result.code == 2
    assert "text or json" in result.stderr


def test_wal_fetch_of_a_missing_segment_exits_1(tmp_path: Path) -> None:
    """restore_command's contract: a non-zero exit below 126 means "not in the archive"."""
    config = tmp_path / "stack.yaml"
    config.write_text(
        "stack: demo\nrepositories:\n  local: {type: fs, path: ./repo}\n"
        "services:\n  postgres: {kind: postgres}\n"
    )
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(bytes(8192))
    assert run_drkit("wal-push", str(segment), config=config).code == 0  # the archive exists
    dest = tmp_path / "RECOVERYXLOG"
    result = run_drkit("wal-fetch", "000000010000000000000002", str(dest), config=config)
    assert not dest.exists()
    assert result.code == 1


def test_wal_fetch_of_an_unreadable_segment_aborts_recovery(tmp_path: Path) -> None:
    import pyrage

    from drkit.adapters.repository.codec import Codec
    from drkit.adapters.repository.fs import FsRepository
    from drkit.engines.postgres.wal.archive import WalArchive

    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    config = tmp_path / "stack.yaml"
    config.write_text(
        "stack: demo\nrepositories:\n  local: {type: fs, path: ./repo}\n"
        f"encryption:\n  recipients: [{recipient}]\n  identity: file:{tmp_path}/lost-key.txt\n"
        "services:\n  postgres: {kind: postgres}\n"
    )
    repo = FsRepository(tmp_path / "repo")
    archive = WalArchive(repo, "demo", "postgres", Codec(recipients=(recipient,)))
    archive.push_bytes("000000010000000000000001", b"wal" * 1000)
    dest = tmp_path / "RECOVERYXLOG"
    result = run_drkit("wal-fetch", "000000010000000000000001", str(dest), config=config)
    assert "no age identity" in result.stderr
    assert result.code >= 126, result.code
