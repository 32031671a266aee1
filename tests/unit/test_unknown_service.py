"""An unknown service is one message naming it, the nearest known one and every known one,
wherever a command takes a service (issue 18, item 3): Stack.service is the one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_drkit


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(
        "stack: demo\nrepositories:\n  local: {type: fs, path: ./repo}\n"
        "services:\n  postgres: {kind: postgres}\n  redis: {kind: redis}\n"
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ("--dry-run", "backup", "redsi"),
        ("restore", "redsi"),
        ("status", "redsi"),
        ("--dry-run", "prune", "redsi"),
        ("--dry-run", "recover", "service", "redsi"),
        ("verify", "--service", "redsi"),
        ("wal-stream", "--service", "redsi"),
    ],
)
def test_an_unknown_service_lists_the_known_ones(config: Path, argv: tuple[str, ...]) -> None:
    result = run_drkit(*argv, config=config)
    assert result.code == 2, result.stderr
    assert f"no service 'redsi' in {config}: did you mean 'redis'? (known: postgres, redis)" in result.stderr
    assert "Traceback" not in result.stderr and "KeyError" not in result.stderr
