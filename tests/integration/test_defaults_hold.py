"""The shipped defaults hold unattended, on a real sandbox (PostgreSQL, Redis, SeaweedFS and the
Hasura and MeiliSearch stand-ins): `status` is green right after `backup --all`, with the
sandbox's objectives and with those `init --preset nself` writes; the default schedule run
through a simulated night fails no job on a lock and leaves the set the weekly drill needs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from drkit.config.nself_preset import OBJECTIVES
from drkit.engines.core.set_refs import list_sets
from drkit.engines.core.workspace import open_workspace
from drkit.engines.ops.schedule import Event, Scheduler
from drkit.engines.ops.schedule_jobs import default_jobs, job_args, job_locks
from drkit.engines.ops.schedule_supervise import ChildHandle
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def full() -> Iterator[SandboxHandle]:
    """Every sandbox service (this module's tests stop PostgreSQL last)."""
    handle = make_sandbox("drkit-it-defaults-")
    yield handle
    destroy_sandbox(handle)


def with_objectives(config: Path, objectives: dict[str, dict[str, str]]) -> None:
    doc = yaml.safe_load(config.read_text())
    for name, svc in doc["services"].items():
        for key in ("rto", "rpo", "priority"):
            svc.pop(key, None)
        svc.update(objectives.get(name, {}))
    config.write_text(yaml.safe_dump(doc, sort_keys=False))


def preset_objectives() -> dict[str, dict[str, str]]:
    """What `init --preset nself` writes for each service (the sandbox's s3 is nself's minio)."""
    out = {}
    for sandbox_name, nself_name in (
        ("postgres", "postgres"),
        ("hasura", "hasura"),
        ("redis", "redis"),
        ("s3", "minio"),
        ("meilisearch", "meilisearch"),
    ):
        rto, rpo, priority = OBJECTIVES[nself_name]
        out[sandbox_name] = {
            "priority": priority,
            **({"rto": rto} if rto else {}),
            **({"rpo": rpo} if rpo else {}),
        }
    return out


@pytest.mark.parametrize("objectives", ["sandbox", "nself-preset"])
def test_status_is_green_right_after_backup_all(full: SandboxHandle, objectives: str) -> None:
    if objectives == "nself-preset":
        with_objectives(full.config_path, preset_objectives())
    backup = run_drkit("backup", "--all", config=full.config_path, timeout=600)
    assert backup.code == 0, backup.stderr
    status = run_drkit("status", "-o", "json", config=full.config_path)
    report = status.json()
    problems = [p for s in report["services"] for p in s["problems"]]
    assert status.code == 0 and not report["red"], problems
    hasura = next(s for s in report["services"] if s["service"] == "hasura")
    assert (hasura["rpo_target_seconds"], hasura["rpo_from"]) == (300.0, "postgres")
    # and the README's `drkit status && drkit metrics --once` reaches metrics
    metrics = run_drkit("metrics", "--once", config=full.config_path)
    assert metrics.code == 0 and 'drkit_status_red{service="hasura"} 0.0' in metrics.stdout


class NightClock:
    """The scheduler's clock: the simulated night's time, moved by the test; its monotonic
    clock and sleep are real (jobs are real processes, their timeouts real)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def test_the_default_schedule_through_a_night_fails_no_job_on_a_lock_and_writes_a_set(
    full: SandboxHandle, tmp_path: Path
) -> None:
    ws = open_workspace(full.stack)
    began = datetime.now(UTC)
    clock = NightClock(datetime(2026, 11, 2, 1, 59, tzinfo=UTC))  # a Monday night
    drkit = [sys.executable, "-m", "drkit", "--config", str(full.config_path)]
    events: list[Event] = []
    scheduler = Scheduler(
        default_jobs(ws.stack),
        tmp_path / "schedule.json",
        clock,
        lambda job: ChildHandle([*drkit, *job_args(job)]),
        report=events.append,
        needs=lambda job: job_locks(ws.stack, job),
    )
    # 01:59 to 05:01, one simulated minute per real second while a job runs or waits: the
    # jobs overlap as they would at night, only 60 times faster (a minute in which nothing
    # runs passes in a fifth of that: no job can overlap it); then everything still running
    # or queued finishes.
    end = clock.at.replace(hour=5, minute=1)
    while clock.at <= end:
        scheduler.tick()
        time.sleep(1.0 if scheduler.running or scheduler.queue else 0.2)
        clock.at += timedelta(minutes=1)
    deadline = time.monotonic() + 900
    while scheduler.running or scheduler.queue:
        assert time.monotonic() < deadline, [e.line() for e in events[-20:]]
        scheduler.tick(start_new=False)
        time.sleep(0.5)
    lines = [e.line() for e in events]
    (tmp_path / "night.log").write_text("\n".join(lines))
    # (a time that comes while the job's previous run still goes is skipped: at 60x that
    # happens, and it is no failure)
    assert not [e for e in events if e.kind in ("failed", "timeout")], lines
    started = {e.job for e in events if e.kind == "started"}
    assert {"backup", "logical-daily", "backup-10m", "backup-30m", "prune", "verify", "status"} <= started
    # the 02:00 dump needs PostgreSQL's lock, which the set holds: it waited, it did not fail
    assert any(e.kind == "queued" and e.job == "logical-daily" for e in events), lines
    # the night's set (prune at 03:30 may have removed the earlier sets of today: keep_daily)
    assert max(s.created_at for s in list_sets(ws)) > began
    drill = run_drkit("--dry-run", "drill", "--rotation", config=full.config_path)
    assert drill.code == 0 and "restored from set" in drill.stdout, drill.stdout + drill.stderr


def test_backup_with_postgres_down_backs_up_the_others_and_exits_1(full: SandboxHandle) -> None:
    """(Last in this module: it stops PostgreSQL.)"""
    from drkit.engines.core.catalog import list_backups
    from drkit.runtimes.local_postgres import LocalPostgres

    stack = full.stack
    ws = open_workspace(stack)
    # Hasura's metadata is read from PostgreSQL (as Hasura does): it fails too, and says why
    others = [n for n in stack.services if n not in ("postgres", "hasura")]

    def counts() -> dict[str, int]:
        return {n: len(list_backups(ws.repo, stack.name, n).complete) for n in stack.services}

    LocalPostgres(stack.services["postgres"].runtime).stop()
    before = counts()
    result = run_drkit("-o", "json", "backup", config=full.config_path, timeout=600)
    assert result.code == 1, result.stdout + result.stderr
    by_service = {entry["service"]: entry for entry in result.json()}
    assert set(by_service) == set(stack.services)
    assert not by_service["postgres"]["ok"] and by_service["postgres"]["error"]
    assert all(by_service[n]["ok"] for n in others), by_service
    assert "hasura keeps its data in postgres, which failed above" in by_service["hasura"]["error"]
    after = counts()
    assert after["postgres"] == before["postgres"]
    assert all(after[n] == before[n] + 1 for n in others), (before, after)
    # the table an operator reads
    text = run_drkit("backup", config=full.config_path, timeout=600)
    assert text.code == 1
    assert "backup results" in text.stdout and "FAILED" in text.stdout
    assert "2 of 5 service(s) not backed up: postgres, hasura" in text.stderr
    # a set cannot be made without PostgreSQL: none is written, the others are backed up anyway
    sets_before = len(list_sets(ws))
    before = counts()
    result = run_drkit("backup", "--all", config=full.config_path, timeout=600)
    assert result.code == 1 and "no set written" in result.stderr, result.stdout + result.stderr
    assert len(list_sets(ws)) == sets_before
    assert all(counts()[n] == before[n] + 1 for n in others)
