"""Shared test helpers: run the real `drkit` command line and capture what it says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drkit.infra.interrupt import take_signals


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_drkit(
    *args: str,
    config: Path | str | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> CliResult:
    """Run drkit as an operator would: a separate process, its exit code and output."""
    argv = [sys.executable, "-m", "drkit"]
    if config is not None:
        argv += ["--config", str(config)]
    argv += list(args)
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def drkit() -> Any:
    return run_drkit


def pytest_configure(config: pytest.Config) -> None:
    """The test process takes the stop signals as drkit's entry point does: a suite started as
    a script's background job inherits SIGINT ignored, and so would every tool a test starts
    (test_child_stop_asks_first_then_kills then waited out its grace)."""
    take_signals()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs the suite on two workers (pytest-xdist, --dist loadgroup). A module is
    one group, so its module-scoped servers start once and its tests keep their order; every
    test that uses the Docker engine is one group, so one worker starts one dockerd and builds
    the images once (the drkit image's wheel is built inside the worktree)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        group = (
            "docker" if "docker_engine" in getattr(item, "fixturenames", ()) else item.nodeid.split("::")[0]
        )
        item.add_marker(pytest.mark.xdist_group(group))
