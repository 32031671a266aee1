"""Every command honours `--output json` (stdout is one JSON document, whatever the exit code)
or refuses it with exit 2 (issue 18, item 3). Run on the shared sandbox, with --dry-run where a
command changes anything; the list of commands comes from the CLI itself, so a new command
without an entry here fails the test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer.main

from drkit.cli.app import _register, app
from tests.conftest import CliResult, run_drkit
from tests.integration.conftest import SandboxHandle
from tests.report_journals import missed_drill

Argv = Callable[["Context"], list[str]]


class Context:
    def __init__(self, sandbox: SandboxHandle, tmp: Path, backup_id: str, set_id: str) -> None:
        self.sandbox = sandbox
        self.tmp = tmp
        self.backup_id = backup_id
        self.set_id = set_id
        self.journal = tmp / "journal.json"
        self.journal.write_bytes(missed_drill().to_json())
        self.project = tmp / "nself"
        self.project.mkdir()
        (self.project / ".env").write_text("PROJECT_NAME=nchat\nPOSTGRES_DB=nchat\nENV=dev\n")


DRY = "--dry-run"
# command path -> (argv after `drkit --output json`, the exit codes it may give)
COMMANDS: dict[str, tuple[Argv, set[int]]] = {
    "version": (lambda c: ["version"], {0}),
    "completion": (lambda c: ["completion", "bash"], {2}),
    "demo": (lambda c: [DRY, "demo"], {0}),
    "backup": (lambda c: [DRY, "backup"], {0}),
    "backups list": (lambda c: ["backups", "list"], {0}),
    "backups show": (lambda c: ["backups", "show", c.backup_id[:10]], {0, 2}),  # a prefix: one or several
    "backups keep": (lambda c: [DRY, "backups", "keep", c.backup_id, "--until", "30d"], {0}),
    "wal-push": (lambda c: ["wal-push", str(c.tmp / "000000010000000000000001")], {1, 2}),
    "wal-fetch": (lambda c: ["wal-fetch", "0000000100000000000000FF", str(c.tmp / "seg")], {1}),
    "wal-stream": (lambda c: ["wal-stream"], {2}),
    "restore": (lambda c: [DRY, "restore", "postgres", "--to", str(c.tmp / "r")], {0}),
    "verify": (lambda c: [DRY, "verify"], {0}),
    "recover": (lambda c: [DRY, "recover", "db-corruption"], {0}),
    "drill": (lambda c: [DRY, "drill", "db-corruption"], {0}),
    "report": (lambda c: ["report", str(c.journal)], {0}),
    "check": (lambda c: ["check"], {0, 3}),
    "start": (lambda c: [DRY, "start"], {0}),
    "stop": (lambda c: [DRY, "stop"], {0}),
    "health": (lambda c: ["health"], {0, 3}),
    "integrity": (lambda c: ["integrity"], {0, 3}),
    "smoke": (lambda c: ["smoke"], {0, 3}),
    "init": (lambda c: [DRY, "init", "--preset", "nself", "--project-dir", str(c.project)], {0}),
    "prune": (lambda c: [DRY, "prune"], {0}),
    "switchover": (lambda c: [DRY, "switchover"], {0, 2}),
    "failover": (lambda c: [DRY, "failover"], {0, 2}),
    "status": (lambda c: ["status"], {0, 3}),
    "metrics": (lambda c: ["metrics", "--once"], {2}),
    "sync": (lambda c: [DRY, "sync"], {0, 2}),
    "sandbox up": (lambda c: [DRY, "sandbox", "up", "--dir", str(c.tmp / "sb")], {0}),
    "sandbox down": (lambda c: ["sandbox", "down", "--dir", str(c.tmp / "no-sandbox")], {0, 2}),
    "sandbox status": (lambda c: ["sandbox", "status", "--dir", str(c.sandbox.dir)], {0}),
    "drills list": (lambda c: ["drills", "list"], {0}),
    "search rebuild": (lambda c: [DRY, "search", "rebuild", "messages"], {0, 2}),
    "replica init": (lambda c: [DRY, "replica", "init", "pg2"], {0, 2}),
    "replica rejoin": (lambda c: [DRY, "replica", "rejoin", "pg2"], {0, 2}),
    "replica status": (lambda c: ["replica", "status"], {0, 2, 3}),
    "notify test": (lambda c: ["notify", "test"], {2}),
    "notify digest": (lambda c: ["notify", "digest", "--print"], {0}),
    "schedule run": (lambda c: ["schedule", "run", "--once"], {2}),
    "schedule list": (lambda c: ["schedule", "list"], {0}),
    "schedule install": (lambda c: [DRY, "schedule", "install", "--dir", str(c.tmp / "units")], {0}),
    # the sandbox has no off-site S3 repository: each names that, as JSON, exit 2
    "offsite setup": (lambda c: [DRY, "offsite", "setup"], {0, 2, 3}),
    "offsite prove": (lambda c: ["offsite", "prove"], {0, 2, 3}),
    "offsite retrieve": (lambda c: [DRY, "offsite", "retrieve"], {0, 2}),
}
# Further forms of a command whose JSON is produced by another branch.
VARIANTS: list[tuple[str, Argv, set[int]]] = [
    ("backup --all", lambda c: [DRY, "backup", "--all"], {0}),
    ("restore redis", lambda c: [DRY, "restore", "redis"], {0}),
    ("restore --set", lambda c: [DRY, "restore", "--set", c.set_id], {0}),
    ("verify ID", lambda c: ["verify", c.backup_id], {0}),
    (
        "restore --timeline",
        lambda c: [DRY, "restore", "postgres", "--to", str(c.tmp / "t"), "--timeline", "1"],
        {0},
    ),
    ("notify test --at", lambda c: [DRY, "notify", "test", "--at", "2026-12-07 22:00 Europe/Berlin"], {0}),
    ("backups keep --release", lambda c: [DRY, "backups", "keep", c.backup_id, "--release"], {0}),
    ("schedule install --crontab", lambda c: ["schedule", "install", "--crontab"], {0}),
    ("report --format html", lambda c: ["report", str(c.journal), "--format", "html"], {2}),
]
REFUSED = {"wal-stream", "metrics", "schedule run", "report --format html", "completion"}


def command_paths() -> set[str]:
    _register()
    paths: set[str] = set()

    def walk(cmd: object, prefix: tuple[str, ...]) -> None:
        sub = getattr(cmd, "commands", None)
        if sub is None:
            paths.add(" ".join(prefix))
            return
        for name, child in sub.items():
            walk(child, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


def test_the_table_names_every_command() -> None:
    assert command_paths() == set(COMMANDS)


@pytest.fixture(scope="module")
def context(sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory) -> Context:
    made = run_drkit("--output", "json", "backup", "postgres", config=sandbox.config_path)
    assert made.code == 0, made.stderr
    backup_id = made.json()[0]["backup_id"]
    made_set = run_drkit("--output", "json", "backup", "--all", config=sandbox.config_path, timeout=600)
    assert made_set.code == 0, made_set.stderr
    return Context(sandbox, tmp_path_factory.mktemp("json"), backup_id, made_set.json()["set_id"])


def run_json(context: Context, argv: list[str]) -> CliResult:
    return run_drkit("--output", "json", *argv, config=context.sandbox.config_path, timeout=600)


@pytest.mark.parametrize(
    ("name", "argv", "codes"),
    [(name, argv, codes) for name, (argv, codes) in COMMANDS.items()] + VARIANTS,
    ids=[*COMMANDS, *(v[0] for v in VARIANTS)],
)
def test_every_command_prints_one_json_document(
    context: Context, name: str, argv: Argv, codes: set[int]
) -> None:
    result = run_json(context, argv(context))
    assert result.code in codes, f"{name}: exit {result.code}\n{result.stdout}\n{result.stderr}"
    try:
        body = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"{name}: stdout is not one JSON document:\n{result.stdout}\n--- stderr\n{result.stderr}")
    if name in REFUSED:
        assert result.code == 2 and body["error"].startswith("--output json: "), body
    if result.code == 0 and argv(context)[0] == DRY:
        assert isinstance(body, dict | list), body
