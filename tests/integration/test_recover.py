"""`drkit recover`: the scenarios on real servers, killed for real and resumed.

Each test owns a private sandbox (it stops, moves and restores its PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drkit.domain.errors import OperationError
from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import switch_and_wait_archived

pytestmark = pytest.mark.integration

COMPLETED_BEFORE = "had completed before the interruption (its after-check holds)"
WITH_WRITERS = {"services": ("postgres", "hasura", "meilisearch")}


def recover(box: SandboxHandle, *args: str, hold: str | None = None) -> Any:
    argv = [sys.executable, "-m", "drkit", "--config", str(box.config_path), "--output", "json", "--yes"]
    env = dict(os.environ)
    if hold is not None:
        env["DRKIT_TEST_HOLD"] = f"{hold}:{box.dir}"
    return subprocess.Popen(
        [*argv, "recover", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def kill_at(box: SandboxHandle, hold: str, *args: str) -> None:
    """Start `drkit recover ARGS`, let it reach `hold`, kill -9 it there."""
    marker = box.dir / f"{hold}.reached"
    proc = recover(box, *args, hold=hold)
    try:
        wait_for(
            lambda: marker.exists() or proc.poll() is not None, timeout=240, what=f"drkit to reach {hold}"
        )
        assert proc.poll() is None, f"drkit ended before {hold}: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("private_sandbox", [WITH_WRITERS], indirect=True)
def test_db_corruption_killed_at_each_destructive_step_resumes_and_never_repeats_one(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    data_dir = Path(box.stack.services["postgres"].runtime.data_dir or "")
    assert run_drkit("backup", config=box.config_path).code == 0
    box.psql("create table recover_probe (id int primary key)")
    box.psql("insert into recover_probe select generate_series(1, 500)")
    (data_dir / "drkit-test-original").write_text("the corrupted cluster's own directory\n")

    kill_at(box, "after-stop-writers", "db-corruption")
    for hold in ("after-stop-postgres", "after-move-aside", "before-restore", "after-restore"):
        kill_at(box, hold, "--resume")
    done = recover(box, "--resume")
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    journal = __import__("json").loads(out)
    assert journal["verdict"] == "passed"
    by_name = {s["name"]: s for s in journal["steps"]}
    assert all(s["status"] == "succeeded" for s in journal["steps"]), by_name
    # Killed after these had done their work: the resumed run saw it and did not repeat them.
    for name in ("stop-postgres", "move-aside", "restore"):
        assert by_name[name]["detail"] == "had completed before the interruption (its after-check holds)", (
            name
        )

    aside = sorted(data_dir.parent.glob(f"{data_dir.name}.drkit-corrupt-*"))
    assert len(aside) == 1, aside  # moved aside once, and kept
    assert (aside[0] / "drkit-test-original").exists()
    assert not list(data_dir.parent.glob(f"{data_dir.name}.drkit-before-restore-*"))  # restore ran once
    assert box.psql("select count(*) from recover_probe") == 500  # committed before: archived, replayed
    assert run_drkit("health", config=box.config_path).code == 0


def test_data_loss_side_by_side_copies_back_exactly_the_deleted_rows(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    assert run_drkit("backup", config=box.config_path).code == 0
    channel = box.psql("select channel_id from nchat_messages group by 1 order by count(*) desc limit 1")
    before = _messages(box, channel)
    target = box.psql("select clock_timestamp()")
    wait_for(
        lambda: box.psql("select clock_timestamp() > %s + interval '1 second'", (target,)),
        timeout=5,
        what="1s",
    )
    box.psql("delete from nchat_messages where channel_id = %s", (channel,))
    loss = box.psql("select clock_timestamp()")
    other = box.psql("select id from nchat_channels where id <> %s limit 1", (channel,))
    box.psql(
        "insert into nchat_messages (channel_id, content) values (%s, 'written after the loss')", (other,)
    )
    switch_and_wait_archived(box.dsn)

    proc = recover(
        box,
        "data-loss",
        "--target-time",
        target.isoformat(),
        "--copy-back",
        f"nchat_messages where channel_id = '{channel}'",
        "--since",
        loss.isoformat(),
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    journal = __import__("json").loads(out)
    assert journal["verdict"] == "passed"
    assert _messages(box, channel) == before  # every deleted row, exactly as it was
    assert box.psql("select count(*) from nchat_messages where content = 'written after the loss'") == 1
    pg = next(m for m in journal["measures"] if m["service"] == "postgres")
    assert abs(pg["rpo_seconds"] - (loss - target).total_seconds()) < 1.0


def test_data_loss_in_place_goes_back_to_t(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    assert run_drkit("backup", config=box.config_path).code == 0
    channel = box.psql("select channel_id from nchat_messages group by 1 order by count(*) desc limit 1")
    before = _messages(box, channel)
    target = box.psql("select clock_timestamp()")
    wait_for(
        lambda: box.psql("select clock_timestamp() > %s + interval '1 second'", (target,)),
        timeout=5,
        what="1s",
    )
    box.psql("delete from nchat_messages where channel_id = %s", (channel,))
    switch_and_wait_archived(box.dsn)

    proc = recover(box, "data-loss", "--target-time", target.isoformat(), "--in-place")
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert _messages(box, channel) == before
    data_dir = Path(box.stack.services["postgres"].runtime.data_dir or "")
    assert list(data_dir.parent.glob(f"{data_dir.name}.drkit-before-pitr-*"))  # the state after T is kept


@pytest.mark.parametrize("private_sandbox", [{"services": ("postgres", "redis")}], indirect=True)
def test_service_redis_killed_comes_back(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    health = run_drkit("--output", "json", "health", "redis", config=box.config_path)
    assert health.code == 0
    assert run_drkit("backup", "redis", config=box.config_path).code == 0
    pid = _pid_of(box, "redis")
    os.killpg(pid, signal.SIGKILL)
    wait_for(
        lambda: run_drkit("health", "redis", config=box.config_path).code == 3, timeout=30, what="redis down"
    )

    proc = recover(box, "service", "redis")
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert run_drkit("health", "redis", config=box.config_path).code == 0


@pytest.mark.parametrize("private_sandbox", [WITH_WRITERS], indirect=True)
def test_full_outage_starts_everything_in_order_and_checks_it(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    assert run_drkit("stop", config=box.config_path).code == 0
    assert run_drkit("health", config=box.config_path).code == 3
    proc = recover(box, "full-outage")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    journal = __import__("json").loads(out)
    assert [s["name"] for s in journal["steps"]] == ["preflight", "start", "scan-logs", "integrity", "smoke"]
    assert {m["service"] for m in journal["measures"]} == {"postgres", "hasura", "meilisearch"}
    assert run_drkit("health", config=box.config_path).code == 0


def test_a_plan_that_cannot_work_is_refused_before_anything_runs(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    result = run_drkit(
        "recover",
        "data-loss",
        "--target-time",
        "2020-01-01T00:00:00Z",
        "--in-place",
        "--yes",
        config=box.config_path,
    )
    assert result.code in (1, 2)
    assert box.psql("select 1") == 1  # the server was never stopped
    assert not list((box.dir / "state").glob("journals/*.json"))


def _messages(box: SandboxHandle, channel: Any) -> list[tuple[Any, ...]]:
    from drkit.adapters.postgres.client import connect

    with connect(box.dsn) as conn:
        rows = conn.execute(
            "select id, user_id, content, created_at from nchat_messages where channel_id = %s order by id",
            (channel,),
        ).fetchall()
    return [tuple(r) for r in rows]


def _pid_of(box: SandboxHandle, service: str) -> int:
    for candidate in (box.dir / "state").rglob(f"{service}*.pid"):
        return int(candidate.read_text().split()[0])
    raise OperationError(f"no pid file for {service} under {box.dir / 'state'}")


def _one_second_after(box: SandboxHandle, moment: Any) -> None:
    wait_for(
        lambda: box.psql("select clock_timestamp() > %s + interval '1 second'", (moment,)),
        timeout=5,
        what="the server's clock to pass T + 1s",
    )
