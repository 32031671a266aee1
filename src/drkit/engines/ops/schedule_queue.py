"""The scheduler's queue: a job whose time comes while another job holds a lock it needs (a
service's backup lock, the stack-set lock) waits here instead of failing on that lock, and
starts, in the order the jobs came, as soon as nothing running or waiting before it needs the
same. What each job needs is `schedule_jobs.job_locks`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from drkit.domain.stack import ScheduledJob

Needs = Callable[[ScheduledJob], frozenset[str]]


@dataclass
class Waiting:
    job: ScheduledJob
    slot: datetime  # the (latest) time it runs for
    since: datetime  # when it began to wait


@dataclass(frozen=True)
class Conflict:
    jobs: tuple[str, ...]  # the running or earlier waiting jobs in its way
    locks: tuple[str, ...]  # what they both need

    def describe(self) -> str:
        return f"waits for {', '.join(self.jobs)} (both need {', '.join(self.locks)})"


class JobQueue:
    def __init__(self, needs: Needs) -> None:
        self.needs = needs
        self.waiting: list[Waiting] = []

    def __contains__(self, name: object) -> bool:
        return any(w.job.name == name for w in self.waiting)

    def __len__(self) -> int:
        return len(self.waiting)

    def get(self, name: str) -> Waiting | None:
        return next((w for w in self.waiting if w.job.name == name), None)

    def conflict(self, job: ScheduledJob, running: Iterable[ScheduledJob]) -> Conflict | None:
        """What stops `job` from starting now: a running job, or one waiting longer, that needs
        a lock it needs. None: it may start."""
        return _conflict(
            self.needs, job, [*running, *(w.job for w in self.waiting if w.job.name != job.name)]
        )

    def add(self, job: ScheduledJob, slot: datetime, now: datetime) -> None:
        self.waiting.append(Waiting(job, slot, now))

    def ready(self, running: Iterable[ScheduledJob]) -> list[Waiting]:
        """Take out, in order, the waiting jobs that can start now: nothing running needs
        their locks, nor anything that waits before them (it goes first)."""
        busy = list(running)
        out: list[Waiting] = []
        ahead: list[ScheduledJob] = []
        for w in self.waiting:
            if _conflict(self.needs, w.job, [*busy, *ahead]) is None:
                out.append(w)
                busy.append(w.job)
            else:
                ahead.append(w.job)
        self.waiting = [w for w in self.waiting if w not in out]
        return out

    def drain(self) -> list[Waiting]:
        out, self.waiting = self.waiting, []
        return out


def _conflict(needs: Needs, job: ScheduledJob, others: Iterable[ScheduledJob]) -> Conflict | None:
    mine = needs(job)
    names: list[str] = []
    shared: set[str] = set()
    for other in others:
        common = mine & needs(other)
        if common:
            names.append(other.name)
            shared |= common
    return Conflict(tuple(names), tuple(sorted(shared))) if names else None
