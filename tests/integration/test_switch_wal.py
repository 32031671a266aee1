"""drkit closes the primary's WAL segment itself and waits for the archive: PITR to seconds
ago on a live primary works with --yes (no psql), and `drkit check` proves archiving end to
end with a segment that made the whole trip, failing when archive_command fails."""

from __future__ import annotations

import time
from datetime import timedelta

from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle


def test_recover_data_loss_to_seconds_ago_on_a_live_primary(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    assert run_drkit("backup", "postgres", config=box.config_path).code == 0
    box.psql("create table notes (id int primary key, body text)")
    box.psql("insert into notes values (1, 'keep me')")
    written = box.psql("select now()")
    # the moment to go back to: 10 s after the row was written, then the row is lost
    target = written + timedelta(seconds=10)
    wait_for(lambda: box.psql("select now() > %s", (target,)), timeout=60, what="10 s to pass")
    box.psql("delete from notes where id = 1")
    when = target.isoformat()
    args = ["recover", "data-loss", "--target-time", when, "--copy-back", "notes where id = 1"]

    # without --yes: refused before anything runs, saying what --yes does (not "run psql")
    refused = run_drkit(*args, config=box.config_path)
    assert refused.code == 1, refused.stdout + refused.stderr
    assert "after the end of the WAL archive" in refused.stderr
    assert "with --yes drkit closes the primary's current WAL segment" in refused.stderr
    assert "pg_switch_wal" not in refused.stderr

    result = run_drkit("--yes", *args, config=box.config_path, timeout=600)
    assert result.code == 0, result.stdout + result.stderr
    assert "switched WAL on postgres: waiting for segment 0000000" in result.stdout
    assert " archived (" in result.stdout
    assert box.psql("select body from notes where id = 1") == "keep me"


def test_check_proves_archiving_with_a_segment_in_the_repository(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    result = run_drkit("--output", "json", "check", config=box.config_path)
    assert result.code == 0, result.stdout + result.stderr
    proof = {r["name"]: r for r in result.json()["results"]}["postgres: archiving proof"]
    assert proof["status"] == "ok"
    assert "switched WAL; segment 0000000" in proof["detail"] and "reached the repository" in proof["detail"]
    # archive_command broken (it still runs `drkit wal-push`, with a configuration that is gone):
    # the settings look right, the archived counter too; the proof fails, naming the failure
    command = str(box.psql("show archive_command"))
    broken = command.replace(str(box.config_path), "/nonexistent/stack.yaml")
    assert broken != command
    box.psql(f"alter system set archive_command = '{broken}'".replace("%", "%%"))
    box.psql("select pg_reload_conf()")
    started = time.monotonic()
    result = run_drkit("--output", "json", "check", config=box.config_path, timeout=300)
    elapsed = time.monotonic() - started
    assert result.code == 3, result.stdout + result.stderr
    proof = {r["name"]: r for r in result.json()["results"]}["postgres: archiving proof"]
    assert proof["status"] == "failed"
    assert "WAL does not reach the repository: archive_command failed" in proof["detail"]
    # Seen as archive_command's failure (pg_stat_archiver), not as the wait running out.
    print(f"archiving proof failed after {elapsed:.1f}s")
