"""Jobs that need one lock wait for each other in the scheduler's queue instead of failing on
the lock; the default schedule plans its jobs so that every service's `rpo` holds."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drkit.config.loader import load_stack
from drkit.domain.stack import ScheduledJob, Severity
from drkit.engines.ops.schedule import Scheduler
from drkit.engines.ops.schedule_jobs import backup_gap, default_jobs, job_args, job_locks, jobs_of
from tests.conftest import run_drkit
from tests.unit.test_schedule import Harness

AT_TWO = datetime(2026, 11, 2, 1, 59, 50, tzinfo=UTC)  # a Monday, just before 02:00

STACK = """\
version: 1
stack: demo
repositories:
  local: {type: fs, path: ./repo}
services:
  postgres: {kind: postgres, dsn: host=127.0.0.1 dbname=app, rpo: 5m}
  hasura: {kind: hasura, url: "http://127.0.0.1:8080", depends_on: [postgres]}
  redis: {kind: redis, url: "redis://127.0.0.1:6379/0", rpo: 15m}
  minio: {kind: s3, url: "http://127.0.0.1:9000", rpo: 1h}
  meilisearch: {kind: meilisearch, url: "http://127.0.0.1:7700", rpo: 1d}
  functions: {kind: functions, depends_on: [postgres]}
"""


def with_locks(h: Harness, needs: dict[str, frozenset[str]]) -> Scheduler:
    h.scheduler = Scheduler(
        h.jobs,
        h.state,
        h.clock,
        h.launch,
        notify=h.messages.append,
        needs=lambda job: needs.get(job.name, frozenset()),
    )
    return h.scheduler


def test_a_job_needing_a_held_lock_waits_in_the_queue_and_starts_when_it_is_free(tmp_path: Path) -> None:
    jobs = [
        ScheduledJob("backup", "0 2 * * *", "backup", "all-set"),
        ScheduledJob("logical-daily", "0 2 * * *", "backup", "logical", services=("postgres",)),
        ScheduledJob("objects", "0 2 * * *", "backup", services=("minio",)),
        ScheduledJob("status", "*/5 * * * *", "status-notify"),
    ]
    h = Harness(tmp_path, jobs, at=AT_TWO, seconds=100)
    s = with_locks(
        h,
        {
            "backup": frozenset({"postgres", "redis", "stack-set"}),
            "logical-daily": frozenset({"postgres"}),
            "objects": frozenset({"minio"}),
        },
    )
    h.ticks(AT_TWO + timedelta(minutes=5), every=10)
    started = {name: at for name, at, _ in h.launched}
    two = AT_TWO.replace(hour=2, minute=0, second=0)
    # the set and the unrelated jobs start at 02:00; the dump waits for the set's postgres lock
    assert started["backup"] == started["objects"] == started["status"] == two
    assert started["logical-daily"] == two + timedelta(seconds=100)
    queued = [e for e in s.events if e.kind == "queued"]
    assert [e.job for e in queued] == ["logical-daily"]
    assert "waits for backup (both need postgres)" in queued[0].detail
    assert "after waiting 100s in the queue" in next(
        e.detail for e in s.events if e.kind == "started" and e.job == "logical-daily"
    )
    assert not [e for e in s.events if e.kind in ("failed", "skipped")]
    assert not [m for m in h.messages if m.severity is not Severity.INFO]  # waiting is normal
    last = json.loads(h.state.read_text())["jobs"]["logical-daily"]["last"]
    assert (last["scheduled"], last["result"]) == ("2026-11-02T02:00:00+00:00", "ok")


def test_waiting_jobs_start_in_the_order_they_came_and_never_overlap(tmp_path: Path) -> None:
    jobs = [ScheduledJob(f"job{i}", "0 2 * * *", "backup") for i in range(3)]
    h = Harness(tmp_path, jobs, at=AT_TWO, seconds=60)
    s = with_locks(h, {j.name: frozenset({"postgres"}) for j in jobs})
    h.ticks(AT_TWO + timedelta(minutes=5), every=5)
    spans = [(at, at + timedelta(seconds=60)) for _, at, _ in h.launched]
    assert [name for name, _, _ in h.launched] == ["job0", "job1", "job2"]
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert [e.kind for e in s.events].count("ok") == 3


def test_later_times_of_a_queued_job_join_its_queued_run(tmp_path: Path) -> None:
    jobs = [
        ScheduledJob("nightly", "0 2 * * *", "backup", "all-set"),
        ScheduledJob("redis", "*/10 * * * *", "backup", services=("redis",)),
    ]
    h = Harness(tmp_path, jobs, at=AT_TWO, seconds=25 * 60)
    s = with_locks(h, {"nightly": frozenset({"redis", "postgres"}), "redis": frozenset({"redis"})})
    h.ticks(AT_TWO + timedelta(minutes=26), every=30)
    [(_, set_started, _)] = [x for x in h.launched if x[0] == "nightly"]
    redis_runs = [at for name, at, _ in h.launched if name == "redis"]
    assert redis_runs == [set_started + timedelta(minutes=25)]  # once, right after the set
    coalesced = [e for e in s.events if e.kind == "coalesced"]
    assert [e.at.minute for e in coalesced] == [10, 20]
    assert not [m for m in h.messages if "skipped" in m.title]


def test_sigterm_drops_waiting_jobs_without_starting_them(tmp_path: Path) -> None:
    jobs = [ScheduledJob("a", "0 2 * * *", "backup"), ScheduledJob("b", "0 2 * * *", "backup")]
    h = Harness(tmp_path, jobs, at=AT_TWO, seconds=3600, abort_after=1.0)
    s = with_locks(h, {"a": frozenset({"postgres"}), "b": frozenset({"postgres"})})
    h.ticks(AT_TWO + timedelta(seconds=20), every=10)
    s.stop_requested.set()
    s.run(grace=10)
    assert [name for name, _, _ in h.launched] == ["a"]
    assert ("b", "aborted") in [(e.job, e.kind) for e in s.events]


def test_once_waits_for_queued_jobs_too(tmp_path: Path) -> None:
    jobs = [ScheduledJob("a", "0 2 * * *", "backup"), ScheduledJob("b", "0 2 * * *", "backup")]
    h = Harness(tmp_path, jobs, at=AT_TWO.replace(minute=0, hour=2, second=5), seconds=30)
    s = with_locks(h, {"a": frozenset({"postgres"}), "b": frozenset({"postgres"})})
    s.run(once=True, poll=5)
    assert [name for name, _, _ in h.launched] == ["a", "b"]
    assert [e.kind for e in s.events if e.job == "b"] == ["queued", "started", "ok"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def test_the_default_schedule_backs_up_each_service_often_enough_for_its_rpo(tmp_path: Path) -> None:
    stack = load_stack(write(tmp_path, STACK))
    jobs = {j.name: j for j in default_jobs(stack)}
    # nightly: one stack-wide set (PostgreSQL's part incremental on weekdays, full on Sundays);
    # then the services a nightly backup cannot keep within rpo
    assert job_args(jobs["backup"]) == ["backup", "--all", "--type", "incremental"]
    assert job_args(jobs["backup-full"]) == ["backup", "--all"]
    assert (jobs["backup-10m"].cron, jobs["backup-10m"].services) == ("*/10 * * * *", ("redis",))
    assert (jobs["backup-30m"].cron, jobs["backup-30m"].services) == ("*/30 * * * *", ("minio",))
    assert (jobs["backup-12h"].cron, jobs["backup-12h"].services) == ("0 */12 * * *", ("meilisearch",))
    # PostgreSQL's WAL and Hasura's data in PostgreSQL need no frequent job
    assert not [j for j in jobs.values() if {"postgres", "hasura"} & set(j.services) and j.job == "backup"][
        2:
    ]
    for name, svc in stack.services.items():
        if svc.kind in ("postgres", "hasura", "functions"):
            continue
        gap = backup_gap(stack, name)
        assert gap is not None and svc.rpo is not None and gap < svc.rpo, name


def test_what_each_job_locks(tmp_path: Path) -> None:
    stack = load_stack(write(tmp_path, STACK))
    jobs = {j.name: j for j in jobs_of(stack)}
    every = {"postgres", "hasura", "redis", "minio", "meilisearch"}  # functions: nothing to back up
    assert job_locks(stack, jobs["backup"]) == every | {"stack-set"}
    assert job_locks(stack, jobs["logical-daily"]) == {"postgres"}
    assert job_locks(stack, jobs["backup-10m"]) == {"redis"}
    assert job_locks(stack, jobs["prune"]) == every | {"stack-set"}
    assert job_locks(stack, jobs["verify"]) == every
    assert job_locks(stack, jobs["status"]) == job_locks(stack, jobs["digest"]) == frozenset()


def test_dry_run_of_the_weekly_drill_checks_that_a_set_exists(tmp_path: Path) -> None:
    """The rotation drill restores an isolated copy from the newest set: without one, the
    dry run says so (exit 1) instead of promising a drill that would fail."""
    path = write(tmp_path, STACK)
    result = run_drkit("--dry-run", "drill", "--rotation", config=path)
    assert result.code == 1
    assert "no stack-wide set" in result.stderr and "drkit backup --all" in result.stderr


def test_install_as_timers_or_crontab_warns_of_jobs_that_would_meet_on_a_lock(tmp_path: Path) -> None:
    path = write(tmp_path, STACK)
    result = run_drkit("schedule", "install", "--crontab", config=path)
    assert result.code == 0
    assert "warning: backup and logical-daily (both need postgres) start together" in result.stderr
    assert "`schedule run` queues them" in result.stderr
    assert "status" not in result.stderr  # status needs no lock
