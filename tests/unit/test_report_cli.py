"""`drkit report` and `drkit drills list` through the real command line: a journal file with
no stack.yaml (the trend from the journals beside it), a run id through the stack's journals
(this host and the repository), every format, and damaged journals named, never fatal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.config.loader import load_stack
from drkit.domain.journal import Journal, RunKind, Verdict
from drkit.engines.core import journals
from drkit.engines.core.workspace import open_workspace
from tests.conftest import CliResult
from tests.report_journals import failed_recovery, missed_drill, past_drills

STACK = """\
version: 1
stack: demo
state_dir: ./state
repositories:
  local:
    type: fs
    path: ./repo
services:
  postgres:
    kind: postgres
    dsn: host=127.0.0.1 dbname=app
    rto: 1m
    rpo: 5m
"""


def drkit_in(cwd: Path, *args: str) -> CliResult:
    """drkit run from `cwd`, with no DRKIT_CONFIG from the environment."""
    env = {k: v for k, v in os.environ.items() if k != "DRKIT_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-m", "drkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def write_journals(directory: Path, runs: list[Journal]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for run in runs:
        (directory / f"{run.run_id}.json").write_bytes(run.to_json())


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    """A stack whose past drills are in the repository only and whose latest drill is on
    this host only, plus one damaged journal in each place."""
    (tmp_path / "stack.yaml").write_text(STACK)
    ws = open_workspace(load_stack(tmp_path / "stack.yaml"))
    for run in past_drills():
        ws.repo.put(f"demo/journals/{run.run_id}.json", run.to_json(), overwrite=True)
    ws.repo.put("demo/journals/20261101T000000Z-drill-x.json", b'{"run_id": "torn', overwrite=True)
    journals.save_local(ws, missed_drill())
    (tmp_path / "state" / "journals" / "20261102T000000Z-drill-y.json").write_text('{"run_id": "y"}')
    return tmp_path


def test_report_of_a_journal_file_needs_no_stack(tmp_path: Path) -> None:
    folder = tmp_path / "journals"
    write_journals(folder, [*past_drills(), missed_drill()])
    (folder / "junk.json").write_text("not json")
    path = folder / f"{missed_drill().run_id}.json"
    result = drkit_in(tmp_path, "report", str(path), "--format", "md")
    assert result.code == 0, result.stderr
    assert "**Verdict: MISSED TARGET**" in result.stdout
    assert "## Trend: db-corruption, last 4 runs" in result.stdout  # from the journals beside it
    assert "| postgres | MISSED | 1m35s MISSED |" in result.stdout


def test_report_by_run_id_writes_each_format(stack_dir: Path) -> None:
    run_id = missed_drill().run_id
    for fmt, marker in (("html", "<!DOCTYPE html>"), ("md", "# Drill report"), ("json", '"run_id"')):
        out = stack_dir / f"report.{fmt}"
        result = drkit_in(stack_dir, "report", run_id, "--format", fmt, "--out", str(out))
        assert result.code == 0, result.stderr
        assert f"missed-target: {fmt} report of {run_id} written to {out}" in result.stdout
        assert out.read_text().startswith(marker) or marker in out.read_text()[:200]
    model = json.loads((stack_dir / "report.json").read_text())
    # the trend joins this host's journal with the repository's
    assert [r["run_id"][:8] for r in model["trend_runs"]] == ["20261109", "20261116", "20261123", "20261130"]
    assert "MISSED" in (stack_dir / "report.html").read_text()


def test_report_json_mode_and_a_journal_in_the_repository_only(stack_dir: Path) -> None:
    run_id = past_drills()[0].run_id
    result = drkit_in(stack_dir, "--output", "json", "report", run_id)
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["run_id"] == run_id and data["verdict_label"] == "PASSED"
    assert len(data["trend_runs"]) == 1


def test_report_of_an_unknown_run_or_format(stack_dir: Path, tmp_path: Path) -> None:
    missing = drkit_in(stack_dir, "report", "20200101T000000Z-drill-nothing")
    assert missing.code == 1
    assert "no journal 20200101T000000Z-drill-nothing" in missing.stderr
    bad = drkit_in(stack_dir, "report", missed_drill().run_id, "--format", "pdf")
    assert bad.code == 2 and "choose html, md or json" in bad.stderr
    elsewhere = tmp_path / "elsewhere"  # no stack.yaml here
    elsewhere.mkdir()
    no_stack = drkit_in(elsewhere, "report", "some-run-id")
    assert no_stack.code == 2 and "no configuration" in no_stack.stderr


def test_drills_list_shows_every_run_and_names_the_damaged(stack_dir: Path) -> None:
    recovery = failed_recovery()
    ws = open_workspace(load_stack(stack_dir / "stack.yaml"))
    journals.save_local(ws, recovery)
    assert journals.try_save_remote(ws, recovery) is None
    result = drkit_in(stack_dir, "--output", "json", "drills", "list")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    ids = [r["run_id"] for r in data["runs"]]
    expected = sorted([j.run_id for j in past_drills()] + [missed_drill().run_id, recovery.run_id])
    assert sorted(ids) == expected
    latest = next(r for r in data["runs"] if r["run_id"] == missed_drill().run_id)
    assert latest["kind"] == "drill" and latest["verdict"] == "missed-target"
    assert latest["services"][0]["rto"]["missed"] is True
    damaged = {Path(d["where"]).name: d["reason"] for d in data["damaged"]}
    assert set(damaged) == {"20261101T000000Z-drill-x.json", "20261102T000000Z-drill-y.json"}
    assert all("journal" in reason for reason in damaged.values())

    text = drkit_in(stack_dir, "drills", "list", "--scenario", "db-corruption")
    assert text.code == 0, text.stderr
    assert re.search(r"postgres +│ 1m35s / 1m00s MISSED +│ 4.2s / 5m00s", text.stdout), text.stdout
    assert recovery.run_id in text.stdout and "20261120T030000Z-drill-full-outage" not in text.stdout
    assert "damaged:" in text.stdout and "20261101T000000Z-drill-x.json" in text.stdout


class SteppingClock:
    """Each reading is 20 s after the previous one: a slow recovery, without waiting."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.moment += timedelta(seconds=20)
        return self.moment

    def monotonic(self) -> float:
        return self.moment.timestamp()

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def test_the_report_of_a_journal_the_runbook_engine_wrote(stack_dir: Path) -> None:
    """The real executor and its measures: the journal's shape is the one reports read."""
    from drkit.engines.runbooks.model import Runbook, Step, StepResult
    from drkit.engines.runbooks.recover import finish
    from drkit.engines.runbooks.run import execute, new_journal

    stack = load_stack(stack_dir / "stack.yaml")
    ws = replace(open_workspace(stack), clock=SteppingClock())
    runbook = Runbook(
        "service",
        (
            Step("probe", "probe postgres", lambda ctx: StepResult("down"), service="postgres"),
            Step("restart", "restart postgres", lambda ctx: StepResult("restarted"), service="postgres"),
            Step("verify", "verify postgres", lambda ctx: StepResult("healthy"), service="postgres"),
        ),
        parameters={"scenario": "service", "service": "postgres"},
    )
    journal = finish(
        ws, execute(ws, runbook, new_journal(ws, runbook, RunKind.RECOVERY), say=lambda _m: None)
    )
    assert journal.verdict is Verdict.MISSED_TARGET  # over the 1 min RTO of stack.yaml

    result = drkit_in(stack_dir, "report", journal.run_id, "--format", "md")
    assert result.code == 0, result.stderr
    rto = journal.measures[0].rto_seconds
    assert rto is not None and rto > 60
    assert "**Verdict: MISSED TARGET**" in result.stdout
    assert re.search(r"^\| postgres \| MISSED \| \d+m\d\ds MISSED \| 1m00s \|", result.stdout, re.MULTILINE)
    assert re.search(r"^verify +#+ +20\.0s succeeded$", result.stdout, re.MULTILINE), result.stdout
