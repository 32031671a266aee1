"""`drkit schedule run` for real on a private sandbox: one base backup job at `* * * * *`.
`--once` runs what is due this minute and exits (no minute-long waits); then the long-running
process is stopped with SIGTERM mid-backup: it aborts the job cleanly and exits, and the
service's lock is free for the next backup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.integration

SCHEDULE = """
schedule:
  base:
    cron: "* * * * *"
    job: backup
    type: base
    services: [postgres]
"""


def base_backups(config: Path) -> list[str]:
    listed = run_drkit("--output", "json", "backups", "list", config=config)
    assert listed.code == 0, listed.stderr
    return [m["backup_id"] for m in listed.json()["backups"] if m["kind"] == "base"]


def test_schedule_run_once_and_sigterm(private_sandbox: SandboxHandle, tmp_path: Path) -> None:
    config = private_sandbox.config_path
    config.write_text(config.read_text() + SCHEDULE)
    before = base_backups(config)

    once = run_drkit("schedule", "run", "--once", config=config)
    assert once.code == 0, once.stdout + once.stderr
    assert "base: started" in once.stdout and "base: ok" in once.stdout, once.stdout
    after = base_backups(config)
    assert len(after) == len(before) + 1
    listed = run_drkit("--output", "json", "schedule", "list", config=config)
    (job,) = listed.json()["jobs"]
    assert (job["job"], job["result"]) == ("base", "ok")
    assert job["last"] is not None

    # the long-running process: a new minute's run starts; SIGTERM while it runs
    state = Path(private_sandbox.stack.state_dir) / "schedule.json"
    assert state.is_file()
    state.unlink()  # forget the run above, so this minute's time is due again
    out = tmp_path / "schedule.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drkit", "--config", str(config), "schedule", "run", "--grace", "60"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    try:
        wait_for(lambda: "base: started" in out.read_text(), timeout=60, what="the scheduled job to start")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert code == 0, text
    finished = [ln for ln in text.splitlines() if "base: aborted" in ln or "base: ok" in ln]
    assert finished, text  # the run ended (aborted, or it finished within the grace) and was recorded
    listed = run_drkit("--output", "json", "schedule", "list", config=config)
    (job,) = listed.json()["jobs"]
    assert job["result"] in ("aborted", "ok"), job
    # nothing left holding the service: the next backup runs
    again = run_drkit("backup", "postgres", config=config)
    assert again.code == 0, again.stderr
