"""`drkit schedule run`: one long-running process that starts each job at its cron times.

Jobs run as child processes (`drkit ...`, see `Launcher`), not in-process: a job that hangs or
crashes cannot take the scheduler with it, its timeout is a kill, and on SIGTERM the scheduler
forwards SIGINT to each running job, which makes the child's Python raise KeyboardInterrupt so
its `finally` blocks run (locks released, tools killed, nothing half-committed: a backup counts
only once its manifest is written), and SIGKILLs what is still there after the grace period.

A job never overlaps itself: a time that comes while its previous run is still going is skipped
and reported. A job that needs a lock another job holds (two jobs backing up PostgreSQL at
02:00) waits in a queue (schedule_queue.py) and starts when the lock is free, instead of
failing on it; its timeout counts from its start. Times that passed while the scheduler was
down are reported as missed and only the latest of them is run, once. State (each job's last
considered time and last run) is in <state_dir>/schedule.json, written atomically after every
change. Time comes from the injected Clock, so tests drive it without sleeping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from drkit.domain.stack import ScheduledJob, Severity
from drkit.engines.ops.notify import Message
from drkit.engines.ops.schedule_jobs import due_slots, unpruned
from drkit.engines.ops.schedule_queue import JobQueue, Needs
from drkit.infra.atomic import write_atomic
from drkit.infra.clock import Clock

STATE_FILE = "schedule.json"
RED_OK = {"status-notify": 3}  # exit code meaning "red, already notified", not a failure


class Handle(Protocol):
    """A started job."""

    def poll(self) -> int | None: ...  # its exit code once it ended

    def interrupt(self) -> None: ...  # ask it to abort cleanly

    def kill(self) -> None: ...

    def error(self) -> str: ...  # its last error line


Launcher = Callable[[ScheduledJob], Handle]
Notify = Callable[[Message], None]


@dataclass(frozen=True)
class Event:
    at: datetime
    job: str
    # started | queued | coalesced | ok | failed | red | aborted | timeout | skipped | missed | warning
    kind: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.job}: {self.kind}" + (
            f": {self.detail}" if self.detail else ""
        )


@dataclass
class RunRecord:
    scheduled: str
    started: str
    finished: str | None = None
    result: str | None = None  # ok | failed | red | aborted | timeout
    exit_code: int | None = None
    detail: str = ""


@dataclass
class JobState:
    considered: str | None = None  # the latest time of the job already dealt with
    last: RunRecord | None = None
    skipped: int = 0  # times skipped because the previous run was still going
    missed: int = 0  # times missed while the scheduler was down


@dataclass
class ScheduleState:
    jobs: dict[str, JobState] = field(default_factory=dict)
    successes: list[str] = field(default_factory=list)  # since the last digest

    @classmethod
    def load(cls, path: Path) -> ScheduleState:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError):
            return cls()  # unreadable: start afresh (the next write replaces it)
        jobs = {}
        for name, j in raw.get("jobs", {}).items():
            last = RunRecord(**j["last"]) if j.get("last") else None
            jobs[name] = JobState(j.get("considered"), last, j.get("skipped", 0), j.get("missed", 0))
        return cls(jobs, list(raw.get("successes", [])))

    def save(self, path: Path) -> None:
        data = {"version": 1, "jobs": {n: asdict(j) for n, j in self.jobs.items()}}
        data["successes"] = self.successes[-500:]
        write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


@dataclass
class _Running:
    job: ScheduledJob
    handle: Handle
    record: RunRecord
    started: float  # clock.monotonic()


class Supervisor(Protocol):
    def check(self, now: datetime) -> None: ...

    def stop(self, grace: float) -> None: ...


class Scheduler:
    def __init__(
        self,
        jobs: Sequence[ScheduledJob],
        state_path: Path,
        clock: Clock,
        launch: Launcher,
        *,
        notify: Notify | None = None,
        digest: Callable[[datetime], Message] | None = None,
        report: Callable[[Event], None] | None = None,
        supervisors: Sequence[Supervisor] = (),
        needs: Needs | None = None,
    ) -> None:
        self.jobs = list(jobs)
        self.state_path = state_path
        self.clock = clock
        self.launch = launch
        self.notify = notify or (lambda _m: None)
        self.digest = digest
        self.report = report or (lambda _e: None)
        self.supervisors = list(supervisors)
        self.state = ScheduleState.load(state_path)
        self.running: dict[str, _Running] = {}
        self.queue = JobQueue(needs or (lambda _job: frozenset()))
        self.events: list[Event] = []
        self.stop_requested = threading.Event()

    # -- one pass ------------------------------------------------------------------------

    def tick(self, *, start_new: bool = True) -> list[Event]:
        """Reap finished jobs, start those due now, check the supervised processes."""
        before = len(self.events)
        now = self.clock.now()
        self._reap(now)
        if not self.stop_requested.is_set():
            for waiting in self.queue.ready(r.job for r in self.running.values()):
                self._start(waiting.job, waiting.slot, now, waited_since=waiting.since)
        if start_new and not self.stop_requested.is_set():
            for job in self.jobs:
                self._consider(job, now)
        for sup in self.supervisors:
            sup.check(now)
        if len(self.events) > before:  # every change of state comes with an event
            self.state.save(self.state_path)
        return self.events[before:]

    def _consider(self, job: ScheduledJob, now: datetime) -> None:
        st = self.state.jobs.setdefault(job.name, JobState())
        # never seen: the times of the current minute count, none before
        after = _parse(st.considered) if st.considered else now.replace(second=0, microsecond=0)
        if not st.considered:
            after -= timedelta(microseconds=1)
        slots, count = due_slots(job, after, now)
        if not count:
            return
        latest = slots[-1]
        st.considered = _iso(latest)
        if job.name in self.running:
            st.skipped += count
            since = self.running[job.name].record.started
            self._event(
                now, job, "skipped", f"{count} run(s) up to {latest:%H:%M}: still running since {since}"
            )
            return
        waiting = self.queue.get(job.name)
        if waiting is not None:  # its queued run will run once, for the latest time
            waiting.slot = latest
            self._event(now, job, "coalesced", f"{count} run(s) up to {latest:%H:%M} join the queued run")
            return
        if count > 1:
            st.missed += count - 1
            self._event(
                now,
                job,
                "missed",
                f"{count - 1} run(s) while the scheduler was down, the last at "
                f"{slots[0]:%Y-%m-%d %H:%M}; running the latest ({latest:%Y-%m-%d %H:%M}) once",
            )
        conflict = self.queue.conflict(job, (r.job for r in self.running.values()))
        if conflict is not None:
            self.queue.add(job, latest, now)
            self._event(now, job, "queued", f"the run of {latest:%Y-%m-%d %H:%M} {conflict.describe()}")
            return
        self._start(job, latest, now)

    def _start(
        self, job: ScheduledJob, slot: datetime, now: datetime, *, waited_since: datetime | None = None
    ) -> None:
        record = RunRecord(scheduled=_iso(slot), started=_iso(now))
        self.state.jobs.setdefault(job.name, JobState()).last = record
        waited = f", after waiting {_seconds(now - waited_since)} in the queue" if waited_since else ""
        self._event(now, job, "started", f"the run of {slot:%Y-%m-%d %H:%M}{waited}")
        if job.job == "digest" and self.digest is not None:
            self._finish(job, record, now, *self._send_digest(now))
            return
        try:
            handle = self.launch(job)
        except Exception as exc:  # a job that cannot start is a failed job, not a dead scheduler
            self._finish(job, record, now, "failed", None, f"cannot start: {exc}")
            return
        self.running[job.name] = _Running(job, handle, record, self.clock.monotonic())

    def _send_digest(self, now: datetime) -> tuple[str, int | None, str]:
        if self.digest is None:
            return "failed", None, "no digest"
        try:
            msg = self.digest(now)
        except Exception as exc:
            return "failed", None, f"digest: {exc}"
        lines = "\n".join(self.state.successes) or "(none)"
        self.notify(
            Message(msg.title, f"{msg.body}\n\nscheduled jobs that succeeded:\n{lines}", msg.severity)
        )
        self.state.successes = []
        return "ok", 0, "digest sent"

    def _reap(self, now: datetime) -> None:
        for name, run in list(self.running.items()):
            code = run.handle.poll()
            if code is None:
                if self.clock.monotonic() - run.started <= run.job.timeout:
                    continue
                run.handle.kill()
                code = run.handle.poll()
                self._finish(
                    run.job, run.record, now, "timeout", code, f"killed after {run.job.timeout:.0f}s"
                )
            else:
                self._finish(run.job, run.record, now, *_result(run.job, code, run.handle))
            del self.running[name]

    def _finish(
        self, job: ScheduledJob, record: RunRecord, now: datetime, result: str, code: int | None, detail: str
    ) -> None:
        record.finished, record.result, record.exit_code, record.detail = _iso(now), result, code, detail
        self._event(now, job, result, detail)
        if result == "ok":
            self.state.successes.append(f"{job.name} ({job.job}) ok, started {record.started}")
        elif result in ("failed", "timeout"):
            self.notify(Message(f"scheduled job {job.name} {result}", detail, Severity.CRITICAL))

    def _event(self, now: datetime, job: ScheduledJob, kind: str, detail: str) -> None:
        event = Event(now, job.name, kind, detail)
        self.events.append(event)
        self.report(event)
        if kind in ("skipped", "missed"):
            self.notify(Message(f"scheduled job {job.name}: {kind}", detail, Severity.WARNING))

    # -- the process ---------------------------------------------------------------------

    def run(self, *, once: bool = False, poll: float = 1.0, grace: float = 90.0) -> None:
        """Tick until `stop_requested` (SIGTERM); with `once`, start what is due now, wait for
        it and return. Either way running jobs are finished or aborted before returning."""
        self._warn_unpruned()
        started = False
        while not self.stop_requested.is_set():
            self.tick(start_new=not (once and started))
            started = True
            if once and not self.running and not self.queue:
                break
            self.clock.sleep(poll)
        self.shutdown(grace, poll=min(poll, 0.2))

    def _warn_unpruned(self) -> None:
        """No backup removes another (`drkit prune` alone does): a schedule of one's own with
        backup jobs and no prune job lets the repository grow forever. Said once per start."""
        if not unpruned(self.jobs):
            return
        detail = "backup jobs and no prune job: no backup is ever removed (add a `job: prune`)"
        event = Event(self.clock.now(), "prune", "warning", detail)
        self.events.append(event)
        self.report(event)
        self.notify(Message("schedule: no prune job", detail, Severity.WARNING))

    def shutdown(self, grace: float, *, poll: float = 0.2) -> None:
        """Ask every running job to abort cleanly; kill what is left after `grace` seconds.
        Jobs still waiting in the queue never start."""
        now = self.clock.now()
        for waiting in self.queue.drain():
            self._event(now, waiting.job, "aborted", f"stopped while queued since {waiting.since:%H:%M:%S}")
        for run in self.running.values():
            run.handle.interrupt()
        deadline = self.clock.monotonic() + grace
        while self.running and self.clock.monotonic() < deadline:
            self._reap_aborted(self.clock.now(), kill=False)
            if self.running:
                self.clock.sleep(poll)
        self._reap_aborted(self.clock.now(), kill=True)
        for sup in self.supervisors:
            sup.stop(grace)
        self.state.save(self.state_path)

    def _reap_aborted(self, now: datetime, *, kill: bool) -> None:
        for name, run in list(self.running.items()):
            code = run.handle.poll()
            if code is None and not kill:
                continue
            if code is None:
                run.handle.kill()
                code = run.handle.poll()
                detail = "stopped by SIGTERM: killed after the grace period"
            else:
                detail = "stopped by SIGTERM" if code != 0 else "finished during shutdown"
            self._finish(run.job, run.record, now, "ok" if code == 0 else "aborted", code, detail)
            del self.running[name]


def _result(job: ScheduledJob, code: int, handle: Handle) -> tuple[str, int, str]:
    if code == 0:
        return "ok", code, ""
    if RED_OK.get(job.job) == code:
        return "red", code, "status is red (already notified)"
    if code < 0:
        return "failed", code, f"killed by signal {-code}: {handle.error()}"
    return "failed", code, f"exit {code}: {handle.error()}"


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f}s"


def _iso(t: datetime) -> str:
    return t.isoformat()


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def load_state(state_dir: str) -> dict[str, Any]:
    """schedule.json as `drkit schedule list` shows it."""
    st = ScheduleState.load(Path(state_dir) / STATE_FILE)
    return {n: asdict(j) for n, j in st.jobs.items()}
