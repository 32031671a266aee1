"""The scheduled jobs: the defaults when stack.yaml has no `schedule:`, each job's `drkit`
command line, its times (croniter, UTC), and the same jobs as systemd timers or crontab lines."""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from croniter import croniter

from drkit.domain.stack import DATA_IN_DEPENDENCIES, ScheduledJob, Stack
from drkit.engines.core.registry import has_engine
from drkit.engines.ops.set_retention import SET_LOCK

MAX_SLOTS = 10_000  # slots enumerated between two ticks; past that only the count is estimated


def default_jobs(stack: Stack) -> tuple[ScheduledJob, ...]:
    """The source's schedule, made to hold unattended: every service backed up nightly at 02:00
    UTC as one stack-wide set (`backup --all`, which the weekly drill restores; PostgreSQL's part
    a full base backup on Sundays and an incremental one on the other days, each fresh when the
    newest is older than `sets.base_max_age`), logical dumps daily at 02:00 and weekly Sunday
    03:00 (they wait for the set's lock in the queue), more frequent backups of the services
    whose `rpo` a nightly backup cannot hold (`frequent_jobs`), prune daily, off-site sync daily
    (when a non-primary repository exists), verify daily (--deep on the newest base), the
    monthly drill rotation (one scenario a week), status with notification every 5 minutes, and
    the daily digest. Without exactly one PostgreSQL (a set needs one), the nightly backups are
    per service: incremental on weekdays, base on Sundays."""
    pg = tuple(s.name for s in stack.services_of_kind("postgres"))
    one = len(pg) == 1  # a set needs exactly one PostgreSQL
    jobs = [
        ScheduledJob("backup", "0 2 * * 1-6", "backup", "all-set-incremental" if one else "incremental"),
        ScheduledJob("backup-full", "0 2 * * 0", "backup", "all-set" if one else "base"),
    ]
    if pg:
        jobs += [
            ScheduledJob("logical-daily", "0 2 * * *", "backup", "logical", services=pg),
            ScheduledJob("logical-weekly", "0 3 * * 0", "backup", "logical", services=pg),
        ]
    jobs += frequent_jobs(stack)
    jobs.append(ScheduledJob("prune", "30 3 * * *", "prune"))
    if any(name != stack.primary_repository for name in stack.repositories):
        jobs.append(ScheduledJob("offsite-sync", "0 4 * * *", "sync"))
    jobs += [
        ScheduledJob("verify", "0 5 * * *", "verify", deep=True),
        ScheduledJob("drill", "0 6 * * 6", "drill"),
        ScheduledJob("status", "*/5 * * * *", "status-notify", timeout=240.0),
        ScheduledJob("digest", "0 8 * * *", "digest", timeout=300.0),
    ]
    return tuple(jobs)


# Backup intervals (minutes) a default job may use; each divides an hour or a day evenly.
INTERVALS = (5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720)
DAY = 24 * 60


def frequent_jobs(stack: Stack) -> list[ScheduledJob]:
    """Backup jobs for the services whose `rpo` the nightly backup cannot hold: each is backed
    up at the longest interval in INTERVALS that is at most 2/3 of its rpo (the rest is
    headroom for the backup itself), services with one interval sharing one job. PostgreSQL
    (its WAL keeps the point recent) and services whose data lives in PostgreSQL need none."""
    by_interval: dict[int, list[str]] = {}
    for svc in stack.services.values():
        if svc.kind == "postgres" or svc.kind in DATA_IN_DEPENDENCIES or svc.rpo is None:
            continue
        if not has_engine(svc.kind):
            continue
        minutes = svc.rpo.total_seconds() / 60 * 2 / 3
        if minutes >= DAY:
            continue
        interval = max((i for i in INTERVALS if i <= minutes), default=INTERVALS[0])
        by_interval.setdefault(interval, []).append(svc.name)
    jobs = []
    for interval, names in sorted(by_interval.items()):
        label = f"{interval}m" if interval < 60 else f"{interval // 60}h"
        cron = f"*/{interval} * * * *" if interval < 60 else f"0 */{interval // 60} * * *"
        jobs.append(ScheduledJob(f"backup-{label}", cron, "backup", "base", services=tuple(sorted(names))))
    return jobs


def job_locks(stack: Stack, job: ScheduledJob) -> frozenset[str]:
    """The host locks a job takes (a service's lock is named after it; `backup --all` also
    takes the stack-set lock), or reads under (verify and drill read backups that a backup or
    prune is writing or removing): jobs sharing one wait for each other in the queue."""
    every = frozenset(s.name for s in stack.services.values() if has_engine(s.kind))
    if job.job == "backup":
        if job.backup_type.startswith("all-set"):
            return every | {SET_LOCK}
        return frozenset(job.services) if job.services else every
    if job.job in ("prune", "drill"):
        return every | {SET_LOCK}
    if job.job in ("sync", "verify"):
        return every
    return frozenset()  # status-notify, digest: read-only and quick


def collisions(stack: Stack) -> list[str]:
    """Jobs that start at the same minute and need a common lock: `schedule run` queues one
    behind the other; separate timers or crontab lines would fail one on the lock."""
    times = {job.name: _week(job) for job in jobs_of(stack)}
    jobs = list(jobs_of(stack))
    out = []
    for i, a in enumerate(jobs):
        for b in jobs[i + 1 :]:
            shared = job_locks(stack, a) & job_locks(stack, b)
            if shared and times[a.name] & times[b.name]:
                out.append(f"{a.name} and {b.name} (both need {', '.join(sorted(shared))})")
    return out


WEEK = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday: the times of one week (any week does)


def _week(job: ScheduledJob) -> set[datetime]:
    """The job's times in one week: [WEEK, WEEK + 7 days)."""
    it = croniter(job.cron, WEEK - timedelta(microseconds=1))
    out = set()
    while (t := it.get_next(datetime)) < WEEK + timedelta(days=7):
        out.add(t)
    return out


def backup_gap(stack: Stack, service: str, jobs: Sequence[ScheduledJob] | None = None) -> timedelta | None:
    """The longest time between two scheduled backups of `service` over a week (UTC); None
    when no scheduled job backs it up."""
    times: set[datetime] = set()
    for job in jobs if jobs is not None else jobs_of(stack):
        if job.job == "backup" and service in job_locks(stack, job):
            times |= _week(job)
    if not times:
        return None
    ordered = sorted(times)
    wrap = ordered[0] + timedelta(days=7) - ordered[-1]  # the week repeats
    return max([wrap, *(b - a for a, b in itertools.pairwise(ordered))])


def unpruned(jobs: Sequence[ScheduledJob]) -> bool:
    """Backups taken and never removed: `drkit prune` is the one place backups go."""
    return any(j.job == "backup" for j in jobs) and not any(j.job == "prune" for j in jobs)


def jobs_of(stack: Stack) -> tuple[ScheduledJob, ...]:
    return default_jobs(stack) if stack.schedule is None else stack.schedule


def job_args(job: ScheduledJob) -> list[str]:
    """The drkit sub-command a job runs (after `drkit --config PATH`)."""
    if job.job == "backup":
        if job.backup_type == "all-set":
            return ["backup", "--all"]
        if job.backup_type == "all-set-incremental":
            return ["backup", "--all", "--type", "incremental"]
        return ["backup", *job.services, "--type", job.backup_type]
    if job.job == "verify":
        return ["verify", "--latest", *(["--deep"] if job.deep else [])]
    if job.job == "sync":
        return ["sync", *(["--to", job.to] if job.to else [])]
    simple = {
        "drill": ["drill", "--rotation"],
        "prune": ["prune"],
        "status-notify": ["status", "--notify"],
        "digest": ["notify", "digest"],
    }
    return simple[job.job]


def next_run(job: ScheduledJob, after: datetime) -> datetime:
    return croniter(job.cron, after).get_next(datetime)


def due_slots(job: ScheduledJob, after: datetime, until: datetime) -> tuple[list[datetime], int]:
    """The job's times in (after, until]: the last few enumerated, and how many there were."""
    it = croniter(job.cron, after)
    slots: list[datetime] = []
    count = 0
    while count < MAX_SLOTS:
        t = it.get_next(datetime)
        if t > until:
            return slots, count
        slots = [*slots[-1:], t]  # keep the last two: the latest runs, the one before is named
        count += 1
    latest = croniter(job.cron, until + timedelta(microseconds=1)).get_prev(datetime)
    return [slots[-1], latest], count + 1


# -- as systemd timers and crontab lines -------------------------------------------------

_DOW = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def on_calendar(cron: str) -> str | None:
    """systemd's OnCalendar= for a five-field cron expression, or None where it cannot say the
    same (cron ORs a restricted day-of-month with a restricted weekday; systemd ANDs them)."""
    fields = cron.split()
    if len(fields) != 5 or any(c in cron for c in "LW#?H"):
        return None
    minute, hour, dom, month, dow = fields
    if dom != "*" and dow != "*":
        return None
    parts = [_field(minute, 0), _field(hour, 0), _field(dom, 1), _field(month, 1), _weekday(dow)]
    m, h, d, mo, wd = parts
    if m is None or h is None or d is None or mo is None or wd is None:
        return None
    day = f"*-{mo}-{d}"
    return f"{wd + ' ' if wd != '*' else ''}{day} {_two(h)}:{_two(m)}:00"


def _two(value: str | None) -> str:
    return value.zfill(2) if value and value.isdigit() else str(value)


def _field(text: str, start: int) -> str | None:
    out = []
    for item in text.split(","):
        base, _, step = item.partition("/")
        if not all(p.isdigit() for p in base.replace("-", " ").replace("*", "").split()):
            return None  # names (jan, mon) in a numeric field
        if step:
            if not step.isdigit() or "-" in base:
                return None
            out.append(f"{start if base == '*' else base}/{step}")
        else:
            out.append(base.replace("-", ".."))
    return ",".join(out)


def _weekday(text: str) -> str | None:
    if text == "*":
        return "*"
    out = []
    for item in text.split(","):
        if "/" in item:
            return None
        ends = item.split("-")
        if not all(e.isdigit() and int(e) <= 7 for e in ends):
            return None
        out.append("..".join(_DOW[int(e)] for e in ends))
    return ",".join(out)


def service_unit(stack: Stack, drkit: Sequence[str], *, grace: float = 90.0) -> str:
    """The systemd service that runs `drkit schedule run` (SIGTERM: jobs finish or abort)."""
    return (
        "[Unit]\n"
        f"Description=drkit scheduler for stack {stack.name}\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\nType=simple\n"
        f"ExecStart={_quote([*drkit, 'schedule', 'run', '--grace', f'{grace:.0f}'])}\n"
        "Restart=on-failure\nRestartSec=10\nKillSignal=SIGTERM\nKillMode=mixed\n"
        f"TimeoutStopSec={grace + 30:.0f}\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def timer_units(stack: Stack, drkit: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """A oneshot service and a timer per job ({file name: text}); and the jobs whose cron
    expression OnCalendar cannot say (left out, named in the second list)."""
    files: dict[str, str] = {}
    skipped = []
    for job in jobs_of(stack):
        calendar = on_calendar(job.cron)
        if calendar is None:
            skipped.append(f"{job.name} ({job.cron})")
            continue
        unit = f"drkit-{stack.name}-{job.name}"
        files[f"{unit}.service"] = (
            f"[Unit]\nDescription=drkit {job.name}: {job.job} for stack {stack.name}\n\n"
            f"[Service]\nType=oneshot\nExecStart={_quote([*drkit, *job_args(job)])}\n"
            f"TimeoutStartSec={job.timeout:.0f}\nKillSignal=SIGINT\n"
        )
        files[f"{unit}.timer"] = (
            f"[Unit]\nDescription=drkit {job.name} at cron '{job.cron}' (UTC)\n\n"
            f"[Timer]\nOnCalendar={calendar} UTC\nPersistent=true\nUnit={unit}.service\n\n"
            "[Install]\nWantedBy=timers.target\n"
        )
    return files, skipped


def crontab_lines(stack: Stack, drkit: Sequence[str]) -> list[str]:
    """Crontab lines, one per job (the times are UTC: CRON_TZ where cron honours it)."""
    lines = [f"# drkit jobs for stack {stack.name} (times in UTC)", "CRON_TZ=UTC"]
    for job in jobs_of(stack):
        lines.append(f"{job.cron} {_quote([*drkit, *job_args(job)])}  # drkit {job.name}")
    return lines


def _quote(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
