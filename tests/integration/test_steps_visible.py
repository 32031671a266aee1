"""Every step visible (issue 18, item 2): `restore --set`, `recover` and `verify --deep` say
each step when it starts; without a terminal (as here: cron, systemd) as timestamped lines on
stderr, the result staying on stdout; long work with its amount against an estimated total;
`--quiet` keeps the results and drops the rest."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d (.*)$")


def said(stderr: str) -> list[str]:
    """The reporter's lines, without their timestamps (every one has one)."""
    out = []
    for line in stderr.splitlines():
        match = STAMP.match(line)
        if match:
            out.append(match.group(1))
    return out


def starts(stderr: str) -> list[str]:
    return [line.removeprefix("▸ ") for line in said(stderr) if line.startswith("▸ ")]


@pytest.mark.parametrize("private_sandbox", [{"services": ("postgres", "redis")}], indirect=True)
def test_restore_set_recover_and_deep_verify_say_each_step_as_it_starts(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    made = run_drkit("--output", "json", "backup", "--all", config=box.config_path, timeout=600)
    assert made.code == 0, made.stderr
    set_id = made.json()["set_id"]

    restored = run_drkit("--yes", "restore", "--set", set_id, config=box.config_path, timeout=600)
    assert restored.code == 0, restored.stdout + restored.stderr
    steps = starts(restored.stderr)
    assert [s.split(" (")[0] for s in steps if s.startswith("restore ")] == [
        "restore postgres",
        "restore redis",
    ]
    assert any(s.startswith("start PostgreSQL on ") for s in steps), steps
    extract = [line for line in said(restored.stderr) if line.startswith("extract ")]
    assert re.match(r"extract \S+-base: started \(about \d+\.\d [KMG]iB\)$", extract[0]), extract
    assert "stack restored" in restored.stdout and "▸" not in restored.stdout

    recovered = run_drkit("--yes", "recover", "service", "redis", config=box.config_path, timeout=600)
    assert recovered.code == 0, recovered.stdout + recovered.stderr
    plan = run_drkit("--output", "json", "--dry-run", "recover", "service", "redis", config=box.config_path)
    names = [s["name"] for s in plan.json()["steps"]]
    assert [s.split(":")[0] for s in starts(recovered.stderr)] == names

    deep = run_drkit("verify", "--deep", "--service", "postgres", config=box.config_path, timeout=600)
    assert deep.code == 0, deep.stdout + deep.stderr
    deep_steps = starts(deep.stderr)
    assert any(s.endswith("with pg_verifybackup") for s in deep_steps), deep_steps
    assert any(s.endswith("into a throwaway instance") for s in deep_steps), deep_steps
    assert any(s.startswith("pg_amcheck on every database") for s in deep_steps), deep_steps

    quiet = run_drkit("--quiet", "--yes", "restore", "--set", set_id, config=box.config_path, timeout=600)
    assert quiet.code == 0, quiet.stderr
    assert said(quiet.stderr) == [] and "stack restored" in quiet.stdout
