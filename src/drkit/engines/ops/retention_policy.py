"""What `drkit prune` removes from one service's backups and WAL archive, and the rule that
decided: a pure function of frozen facts (the backups, the sets, the archived WAL names),
the policy and "now". prune.py gathers the facts and carries the plan out.

Backups are kept per *series* (the backups that replace each other: PostgreSQL base backups,
logical dumps, Redis snapshots, ...). In each series a backup stays when any rule keeps it:
- keep_last N: the newest N;
- keep_daily / keep_weekly / keep_monthly N (grandfather-father-son): the newest backup of
  each of the last N days / ISO weeks / months (UTC) that have a backup (periods without one
  do not count, so a stopped schedule never empties the repository);
- the newest verified backup (`verified.json`, written by `drkit verify`), or the newest
  backup when none is verified;
- any backup a stack-wide set refers to;
- base backups: the one PITR into the `wal_retention` window starts from (the newest that
  finished at or before now - wal_retention, else the oldest);
- a pinned backup (`drkit backups keep`, engines/core/pins.py), while its pin holds;
- chain: every backup a kept incremental backup is built on (its parent, the parent's
  parent, ... down to the full one): an incremental restores only on top of its chain.

WAL stays when a kept base backup needs it to reach consistency (its start..stop segments),
when a set needs it (its base backup's start up to the set's restore point), or when it is
at or after the start segment of the window's base backup. Segment numbers are compared on
every timeline (a timeline switch keeps the numbering), history files always stay, and a
name that is not a WAL segment is never removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from drkit.domain.stack import Retention
from drkit.domain.wal import DEFAULT_SEGMENT_SIZE, SEGMENT_RE, Segment


@dataclass(frozen=True)
class WalSpan:
    """The WAL a base backup needs to reach consistency: segment numbers start..stop."""

    timeline: int
    start: int
    stop: int


@dataclass(frozen=True)
class BackupFact:
    backup_id: str
    series: str  # backups of one series replace each other ("base", "logical", "rdb", ...)
    finished_at: datetime
    verified: bool = False
    wal: WalSpan | None = None  # PostgreSQL base backups only
    pinned: str | None = None  # why a pin that still holds keeps it (`drkit backups keep`)
    parent: str | None = None  # an incremental backup: the backup it is built on


@dataclass(frozen=True)
class SetFact:
    set_id: str
    backup_id: str  # this service's backup in the set
    until_segment: int | None = None  # PostgreSQL: the segment holding the set's restore point


@dataclass(frozen=True)
class Policy:
    retention: Retention
    wal_retention: timedelta | None = None  # None: the service has no WAL archive
    floor: timedelta | None = None  # the repository's minimum retention / Object Lock: nothing younger goes


@dataclass(frozen=True)
class Facts:
    service: str
    backups: tuple[BackupFact, ...]
    sets: tuple[SetFact, ...] = ()
    wal: tuple[str, ...] = ()  # archived WAL file names (segments, partials, labels, histories)
    wal_segment_size: int = DEFAULT_SEGMENT_SIZE
    wal_recent: frozenset[str] = frozenset()  # WAL archived within the policy's floor


@dataclass(frozen=True)
class Decision:
    name: str  # a backup id or a WAL file name
    rule: str  # the rule that decided: keep_last, keep_daily, ..., set, verified, pitr-window, unkept
    why: str


@dataclass(frozen=True)
class Plan:
    service: str
    keep: tuple[Decision, ...]  # backups, newest first, each with the first rule that keeps it
    drop: tuple[Decision, ...]  # backups to remove, oldest first
    wal_drop: tuple[Decision, ...]  # WAL files to remove, oldest first
    wal_kept: int
    wal_from: str | None = None  # the first segment the PITR window keeps
    wal_segment_size: int = DEFAULT_SEGMENT_SIZE

    def wal_runs(self) -> list[tuple[str, str, int]]:
        """The WAL to remove as runs of consecutive segments: (first, last, how many)."""
        runs: list[tuple[str, str, int]] = []
        previous: int | None = None
        for d in self.wal_drop:
            number = segment_number(d.name, self.wal_segment_size)
            if runs and number is not None and previous is not None and number - previous <= 1:
                first, _, count = runs[-1]
                runs[-1] = (first, d.name, count + 1)
            else:
                runs.append((d.name, d.name, 1))
            previous = number
        return runs

    @property
    def empty(self) -> bool:
        return not self.drop and not self.wal_drop


def decide(facts: Facts, policy: Policy, now: datetime) -> Plan:
    anchor = window_anchor(facts.backups, policy.wal_retention, now)
    reasons = _reasons(facts, policy, anchor)
    if policy.floor is not None:  # the repository keeps everything younger (docs/offsite.md)
        days = f"{policy.floor.total_seconds() / 86400:g} days"
        for b in facts.backups:
            if b.finished_at > now - policy.floor:
                until = b.finished_at + policy.floor
                why = f"younger than the repository's min_retention ({days}): it stays until {until:%Y-%m-%d}"
                reasons.setdefault(b.backup_id, []).append(Decision(b.backup_id, "min_retention", why))

        def keep(b: BackupFact, rule: str, why: str) -> None:
            reasons.setdefault(b.backup_id, []).append(Decision(b.backup_id, rule, why))

        _keep_chains(
            {b.backup_id: b for b in facts.backups}, reasons, keep
        )  # what the floor keeps needs its chain
    newest_first = sorted(facts.backups, key=lambda b: (b.finished_at, b.backup_id), reverse=True)
    kept = tuple(reasons[b.backup_id][0] for b in newest_first if b.backup_id in reasons)
    unkept = _unkept_rule(policy.retention)
    drop = tuple(
        Decision(b.backup_id, "unkept", unkept) for b in reversed(newest_first) if b.backup_id not in reasons
    )
    wal_keep, wal_drop = _wal(facts, [b for b in newest_first if b.backup_id in reasons], anchor, policy)
    wal_from = None
    if anchor is not None and anchor.wal is not None:
        wal_from = Segment(anchor.wal.timeline, anchor.wal.start, facts.wal_segment_size).name
    return Plan(facts.service, kept, drop, wal_drop, wal_keep, wal_from, facts.wal_segment_size)


def _reasons(facts: Facts, policy: Policy, anchor: BackupFact | None) -> dict[str, list[Decision]]:
    """Every rule that keeps a backup, by backup id (a backup no rule keeps is absent)."""
    reasons: dict[str, list[Decision]] = {}

    def keep(b: BackupFact, rule: str, why: str) -> None:
        reasons.setdefault(b.backup_id, []).append(Decision(b.backup_id, rule, why))

    for b in facts.backups:  # first: a pin is what an operator looks for in the plan
        if b.pinned is not None:
            keep(b, "pinned", b.pinned)
    for members in _series(facts.backups).values():
        newest_first = sorted(members, key=lambda b: (b.finished_at, b.backup_id), reverse=True)
        for b, rule, why in gfs(newest_first, policy.retention):
            keep(b, rule, why)
        verified = next((b for b in newest_first if b.verified), None)
        if verified is not None:
            keep(verified, "verified", "the newest verified backup of its series")
        else:
            keep(newest_first[0], "verified", "the newest backup of its series (none is verified)")
    by_id = {b.backup_id: b for b in facts.backups}
    for s in facts.sets:
        if s.backup_id in by_id:
            keep(by_id[s.backup_id], "set", f"set {s.set_id} refers to it")
    if anchor is not None:
        keep(anchor, "pitr-window", f"PITR into the wal_retention window ({_age(policy)}) starts from it")
    _keep_chains(by_id, reasons, keep)
    return reasons


def _keep_chains(
    by_id: dict[str, BackupFact],
    reasons: dict[str, list[Decision]],
    keep: Callable[[BackupFact, str, str], None],
) -> None:
    """Every backup a kept incremental is built on, down to its full one."""
    for backup_id in list(reasons):
        child = by_id.get(backup_id)
        seen: set[str] = set()
        while child is not None and child.parent is not None and child.parent not in seen:
            seen.add(child.parent)
            parent = by_id.get(child.parent)
            if parent is None:
                break  # already gone: `backups list` reports the chain broken
            if not any(d.rule == "chain" for d in reasons.get(parent.backup_id, ())):
                keep(parent, "chain", f"incremental {child.backup_id} is built on it")
            child = parent


def _series(backups: Iterable[BackupFact]) -> dict[str, list[BackupFact]]:
    out: dict[str, list[BackupFact]] = {}
    for b in backups:
        out.setdefault(b.series, []).append(b)
    return out


Period = Callable[[datetime], tuple[int, int, int]]


def _day(t: datetime) -> tuple[int, int, int]:
    d = t.astimezone(UTC)
    return (d.year, d.month, d.day)


def _week(t: datetime) -> tuple[int, int, int]:
    iso = t.astimezone(UTC).isocalendar()
    return (iso.year, iso.week, 0)


def _month(t: datetime) -> tuple[int, int, int]:
    d = t.astimezone(UTC)
    return (d.year, d.month, 0)


PERIODS: tuple[tuple[str, Period, str], ...] = (
    ("keep_daily", _day, "day"),
    ("keep_weekly", _week, "week"),
    ("keep_monthly", _month, "month"),
)


def gfs(newest_first: list[BackupFact], r: Retention) -> list[tuple[BackupFact, str, str]]:
    out: list[tuple[BackupFact, str, str]] = []
    if r.keep_last:
        out.extend((b, "keep_last", f"among the newest {r.keep_last}") for b in newest_first[: r.keep_last])
    for rule, period, label in PERIODS:
        count: int = getattr(r, rule)
        seen: list[tuple[int, int, int]] = []
        for b in newest_first:
            p = period(b.finished_at)
            if p in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(p)
            out.append((b, rule, f"the newest of its {label} ({rule} {count})"))
    return out


def window_anchor(
    backups: Iterable[BackupFact], wal_retention: timedelta | None, now: datetime
) -> BackupFact | None:
    """The base backup PITR into [now - wal_retention, now] starts from: the newest one that
    finished at or before the window opens, else (the repository is younger) the oldest."""
    if wal_retention is None:
        return None
    bases = sorted((b for b in backups if b.wal is not None), key=lambda b: (b.finished_at, b.backup_id))
    if not bases:
        return None
    opens = now - wal_retention
    before = [b for b in bases if b.finished_at <= opens]
    return before[-1] if before else bases[0]


def _wal(
    facts: Facts, kept: list[BackupFact], anchor: BackupFact | None, policy: Policy
) -> tuple[int, tuple[Decision, ...]]:
    """(how many WAL files stay, the ones that go, oldest first)."""
    if anchor is None or anchor.wal is None:
        return len(facts.wal), ()  # no base backup decides: keep every file
    ranges = [(b.wal.start, b.wal.stop) for b in kept if b.wal is not None]
    spans = {b.backup_id: b.wal for b in kept if b.wal is not None}
    for s in facts.sets:
        span = spans.get(s.backup_id)
        if span is not None and s.until_segment is not None:
            ranges.append((span.start, max(span.stop, s.until_segment)))
    opens = anchor.wal.start
    why = (
        f"before {Segment(anchor.wal.timeline, opens, facts.wal_segment_size).name}, where PITR from "
        f"{anchor.backup_id} (the wal_retention window, {_age(policy)}) begins, "
        "and no kept backup or set needs it"
    )
    drop: list[tuple[int, str]] = []
    for name in facts.wal:
        number = segment_number(name, facts.wal_segment_size)
        if number is None or number >= opens or any(lo <= number <= hi for lo, hi in ranges):
            continue
        if name in facts.wal_recent:  # within the repository's minimum retention
            continue
        drop.append((number, name))
    drop.sort()
    return len(facts.wal) - len(drop), tuple(Decision(name, "wal_retention", why) for _, name in drop)


def segment_number(name: str, size: int) -> int | None:
    """The segment a WAL file belongs to (segments, `.partial`, `.backup` labels); None for
    history files and anything else, which are never removed."""
    head = name[:24]
    if not SEGMENT_RE.match(head) or name.endswith(".history"):
        return None
    if name != head and not name.endswith(".partial") and not name.endswith(".backup"):
        return None
    return Segment.parse(head, size).number


def _age(policy: Policy) -> str:
    if policy.wal_retention is None:
        return "none"
    return f"{policy.wal_retention.total_seconds() / 86400:g} days"


def _unkept_rule(r: Retention) -> str:
    last = f"keep_last {r.keep_last}, " if r.keep_last else ""
    return (
        f"no rule keeps it ({last}keep_daily {r.keep_daily}, keep_weekly {r.keep_weekly}, "
        f"keep_monthly {r.keep_monthly}); no set refers to it, it is not the newest verified "
        f"backup, and PITR into the wal_retention window does not start from it"
    )
