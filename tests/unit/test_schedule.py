"""The scheduler with an injected clock: no real waits. Jobs are fakes that end when the
clock says so; the clock's sleep advances it (and can deliver a "SIGTERM")."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drkit.domain.stack import ScheduledJob, Severity
from drkit.engines.ops.notify import Message
from drkit.engines.ops.schedule import Scheduler
from drkit.engines.ops.schedule_supervise import Lag, Supervised

T0 = datetime(2026, 11, 2, 0, 0, 30, tzinfo=UTC)  # a Monday


class FakeClock:
    def __init__(self, at: datetime) -> None:
        self.at = at
        self.on_sleep: Callable[[], None] | None = None

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return self.at.timestamp()

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
        if self.on_sleep is not None:
            self.on_sleep()

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class FakeJob:
    """Ends `seconds` after it started; an interrupt ends it `abort_after` seconds later
    (None: it ignores interrupts and only a kill ends it)."""

    def __init__(self, clock: FakeClock, seconds: float, code: int, abort_after: float | None) -> None:
        self.clock, self.code, self.abort_after = clock, code, abort_after
        self.ends = clock.monotonic() + seconds
        self.interrupted = self.killed = False

    def poll(self) -> int | None:
        if self.killed:
            return -9
        return self.code if self.clock.monotonic() >= self.ends else None

    def interrupt(self) -> None:
        self.interrupted = True
        if self.abort_after is not None:
            self.ends = min(self.ends, self.clock.monotonic() + self.abort_after)
            self.code = 130

    def kill(self) -> None:
        self.killed = True

    def error(self) -> str:
        return "pg_basebackup: connection refused" if self.code else ""


class Harness:
    def __init__(self, tmp_path: Path, jobs: list[ScheduledJob], at: datetime = T0, **job: object) -> None:
        self.clock = FakeClock(at)
        self.state = tmp_path / "schedule.json"
        self.jobs = jobs
        self.job_options = {"seconds": 10.0, "code": 0, "abort_after": 2.0, **job}
        self.launched: list[tuple[str, datetime, FakeJob]] = []
        self.messages: list[Message] = []
        self.scheduler = self.new()

    def new(self) -> Scheduler:
        return Scheduler(
            self.jobs,
            self.state,
            self.clock,
            self.launch,
            notify=self.messages.append,
            digest=lambda now: Message("digest", "backups: 1", Severity.INFO),
        )

    def launch(self, job: ScheduledJob) -> FakeJob:
        handle = FakeJob(self.clock, **self.job_options)  # type: ignore[arg-type]
        self.launched.append((job.name, self.clock.now(), handle))
        return handle

    def ticks(self, until: datetime, every: float = 30) -> list[str]:
        kinds = []
        while self.clock.now() <= until:
            kinds += [f"{e.job}:{e.kind}" for e in self.scheduler.tick()]
            self.clock.advance(every)
        return kinds


def every_minute(name: str = "minutely") -> ScheduledJob:
    return ScheduledJob(name, "* * * * *", "backup")


def test_a_long_job_never_overlaps_itself_and_each_skipped_time_is_reported(tmp_path: Path) -> None:
    h = Harness(tmp_path, [every_minute()], seconds=150)
    h.ticks(T0 + timedelta(minutes=5))
    events = h.scheduler.events
    starts = [e.at for e in events if e.kind == "started"]
    # started 00:00:30 (this minute's time), busy until 00:03:00, so 00:01 and 00:02 are
    # skipped; the 00:03 run is busy until 00:05:30, so 00:04 and 00:05 are skipped too
    assert starts == [T0, T0.replace(minute=3, second=0)]
    skipped = [e for e in events if e.kind == "skipped"]
    assert [e.at.minute for e in skipped] == [1, 2, 4, 5]
    assert "still running since 2026-11-02T00:00:30" in skipped[0].detail
    assert len(h.launched) == 2
    assert [e.at for e in events if e.kind == "ok"] == [T0.replace(minute=3, second=0), T0.replace(minute=5)]
    assert all(not f.interrupted and not f.killed for _, _, f in h.launched)
    assert [m.severity for m in h.messages if "skipped" in m.title] == [Severity.WARNING] * 4
    state = json.loads(h.state.read_text())["jobs"]["minutely"]
    assert state["skipped"] == 4
    assert state["last"]["started"] == "2026-11-02T00:03:00+00:00"


def test_runs_missed_while_down_are_reported_and_only_the_latest_runs_once(tmp_path: Path) -> None:
    daily = ScheduledJob("nightly", "0 2 * * *", "backup")
    at = datetime(2026, 11, 2, 2, 0, 5, tzinfo=UTC)
    h = Harness(tmp_path, [daily, every_minute()], at=at)
    h.ticks(at + timedelta(seconds=20), every=20)  # both ran at 02:00 and finished
    assert [name for name, _, _ in h.launched] == ["nightly", "minutely"]
    # the process is down for 3 days, then starts again (a new process: the state file only)
    h.clock.at = at + timedelta(days=3, minutes=30)
    h.launched.clear()
    h.scheduler = h.new()
    events = h.scheduler.tick()
    assert sorted(name for name, _, _ in h.launched) == ["minutely", "nightly"]  # once each
    missed = {e.job: e.detail for e in events if e.kind == "missed"}
    assert missed["nightly"].startswith("2 run(s) while the scheduler was down, the last at 2026-11-04 02:00")
    assert "running the latest (2026-11-05 02:00) once" in missed["nightly"]
    assert missed["minutely"].startswith(f"{3 * 24 * 60 + 30 - 1} run(s)")
    state = json.loads(h.state.read_text())["jobs"]
    assert state["nightly"]["missed"] == 2
    assert state["nightly"]["last"]["scheduled"] == "2026-11-05T02:00:00+00:00"
    # nothing more is due a minute later for the daily job: it is not run again
    h.clock.advance(60)
    h.scheduler.tick()
    assert sum(1 for name, _, _ in h.launched if name == "nightly") == 1


def test_sigterm_aborts_the_running_job_cleanly_and_records_it(tmp_path: Path) -> None:
    h = Harness(tmp_path, [every_minute("backup")], seconds=3600, abort_after=3.0)
    sleeps = {"n": 0}

    def term_after_a_while() -> None:
        sleeps["n"] += 1
        if sleeps["n"] == 5:
            h.scheduler.stop_requested.set()  # what the SIGTERM handler does

    h.clock.on_sleep = term_after_a_while
    h.scheduler.run(poll=1.0, grace=30)
    (_, _, job), *more = h.launched
    assert not more
    assert job.interrupted and not job.killed  # asked to abort, and it did within the grace
    last = json.loads(h.state.read_text())["jobs"]["backup"]["last"]
    assert (last["result"], last["exit_code"]) == ("aborted", 130)
    assert last["detail"] == "stopped by SIGTERM"
    assert h.clock.now() - T0 < timedelta(seconds=15)  # 5 ticks, 3 s to abort: no 30 s wait


def test_sigterm_kills_a_job_that_ignores_it_after_the_grace_period(tmp_path: Path) -> None:
    h = Harness(tmp_path, [every_minute("backup")], seconds=3600, abort_after=None)
    h.clock.on_sleep = h.scheduler.stop_requested.set
    h.scheduler.run(poll=1.0, grace=20)
    (_, _, job), *_ = h.launched
    assert job.interrupted and job.killed
    last = json.loads(h.state.read_text())["jobs"]["backup"]["last"]
    assert last["result"] == "aborted"
    assert "killed after the grace period" in last["detail"]
    assert timedelta(seconds=20) <= h.clock.now() - T0 < timedelta(seconds=25)


def test_no_job_starts_after_sigterm(tmp_path: Path) -> None:
    h = Harness(tmp_path, [every_minute()])
    h.scheduler.stop_requested.set()
    h.scheduler.run()
    assert h.launched == []


def test_a_failure_notifies_at_once_and_successes_go_into_the_digest(tmp_path: Path) -> None:
    jobs = [every_minute("bad"), ScheduledJob("digest", "2 0 * * *", "digest")]
    h = Harness(tmp_path, jobs, code=2)
    h.ticks(T0)  # 00:00:30: "bad" starts, and will fail
    h.job_options["code"] = 0
    h.ticks(T0 + timedelta(seconds=90))  # 00:01: "bad" succeeds this time; 00:02: the digest
    critical = [m for m in h.messages if m.severity is Severity.CRITICAL]
    assert [m.title for m in critical] == ["scheduled job bad failed"]
    assert "exit 2: pg_basebackup: connection refused" in critical[0].body
    digest = [m for m in h.messages if m.title == "digest"]
    assert len(digest) == 1
    assert "backups: 1" in digest[0].body
    assert "bad (backup) ok" in digest[0].body


def test_a_job_past_its_timeout_is_killed_and_reported(tmp_path: Path) -> None:
    job = ScheduledJob("slow", "0 * * * *", "verify", timeout=120)
    h = Harness(tmp_path, [job], at=T0.replace(second=0), seconds=10_000)
    h.ticks(T0 + timedelta(minutes=3))
    (_, _, handle), *_ = h.launched
    assert handle.killed
    assert [m.title for m in h.messages] == ["scheduled job slow timeout"]


def test_a_job_that_cannot_start_is_a_failed_run_not_a_dead_scheduler(tmp_path: Path) -> None:
    h = Harness(tmp_path, [every_minute()])

    def broken(job: ScheduledJob) -> FakeJob:
        raise OSError("no such file")

    h.scheduler.launch = broken
    events = h.scheduler.tick()
    assert [e.kind for e in events] == ["started", "failed"]
    assert "cannot start: no such file" in events[-1].detail


def test_wal_stream_is_restarted_with_backoff_and_its_lag_watched() -> None:
    clock = FakeClock(T0)
    children: list[FakeJob] = []
    reports: list[str] = []
    messages: list[Message] = []
    spool = iter([100, 200, 300, 400, 400, 400])

    def start() -> FakeJob:
        children.append(FakeJob(clock, 1.0, 1, 0.0))  # dies after a second each time
        return children[-1]

    sup = Supervised(
        "wal-stream postgres",
        start,
        clock,  # type: ignore[arg-type]
        report=lambda _n, text: reports.append(text),
        notify=messages.append,
        lag=lambda: Lag(10.0, next(spool)),
        lag_limit=300,
        check_every=5,
    )
    for _ in range(30):
        sup.check(clock.now())
        clock.advance(1)
    starts = [r for r in reports if "started" in r]
    restarts = [r for r in reports if r.startswith("exited")]
    assert "restarting in 1s" in restarts[0] and "restarting in 2s" in restarts[1]
    assert "restarting in 4s" in restarts[2] and "restarting in 8s" in restarts[3]
    assert len(starts) == len(children) < 10  # backoff: not restarted every second
    assert any(m.severity is Severity.CRITICAL and "keeps failing" in m.title for m in messages)
    falling = [m for m in messages if "falling behind" in m.title]
    assert len(falling) == 1 and "spool keeps growing" in falling[0].body


def test_status_red_is_not_a_job_failure_and_supervised_children_stop_with_the_scheduler(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, [ScheduledJob("status", "*/5 * * * *", "status-notify")], at=T0.replace(second=0))
    h.job_options.update(code=3, seconds=1)
    stream = FakeJob(h.clock, 10_000, 0, 1.0)
    sup = Supervised(
        "wal-stream postgres", lambda: stream, h.clock, report=lambda *_: None, notify=h.messages.append
    )  # type: ignore[arg-type]
    h.scheduler.supervisors = [sup]
    h.ticks(T0 + timedelta(seconds=30), every=5)
    last = json.loads(h.state.read_text())["jobs"]["status"]["last"]
    assert (last["result"], last["exit_code"]) == ("red", 3)
    assert not [m for m in h.messages if m.severity is Severity.CRITICAL]  # status notified itself
    h.scheduler.stop_requested.set()
    h.scheduler.run(grace=10)
    assert stream.interrupted and not stream.killed


def test_a_schedule_with_backups_and_no_prune_warns_once_at_start(tmp_path: Path) -> None:
    """No backup removes another: without a prune job the repository only grows."""
    h = Harness(tmp_path, [every_minute()])
    h.scheduler.stop_requested.set()
    h.scheduler.run()
    assert [(e.job, e.kind) for e in h.scheduler.events] == [("prune", "warning")]
    assert [(m.title, m.severity) for m in h.messages] == [("schedule: no prune job", Severity.WARNING)]

    pruned = Harness(tmp_path / "p", [every_minute(), ScheduledJob("prune", "30 3 * * *", "prune")])
    pruned.scheduler.stop_requested.set()
    pruned.scheduler.run()
    assert pruned.scheduler.events == [] and pruned.messages == []
