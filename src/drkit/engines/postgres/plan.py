"""Decide a PostgreSQL restore before touching anything: which base backup, which timeline,
which WAL, and whether the target can be reached at all (a gap, before the oldest backup, in
the future).

Timelines: every PITR or in-place restore starts a new timeline, and its `.history` file
(archived beside the WAL) names the point where it left its parent. Recovery to a timeline
follows that path: the parent's segments up to the switch, then the child's from the switch
segment on. By default the plan follows the newest timeline that descends from a usable
backup (what PostgreSQL's `recovery_target_timeline = 'latest'` means), and names it.

Time targets: PostgreSQL stops before the first commit (or abort) recorded after the target
time, so the WAL needed ends in the first segment that records such a commit. Those times
come from the WAL itself (`last_commit`: the newest commit time recorded in a segment),
never from when a file was stored: copying a repository changes that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NoReturn

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import NotFoundError, UnreachableTargetError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.wal import (
    PARTIAL_RE,
    SEGMENT_RE,
    Lsn,
    Segment,
    TimelineSpan,
    on_path,
    segment_on_path,
)
from drkit.engines.core.chains import BrokenChainError, Catalog, broken_chains, chain_of
from drkit.engines.postgres.wal.archive import check_path

TimelinePath = tuple[TimelineSpan, ...]


def _no_commit_times(_segment: Segment) -> datetime | None:
    return None


@dataclass(frozen=True)
class ArchiveView:
    """What the WAL archive holds: file names, each timeline's path (from its history
    file; timeline 1 has none), and the newest commit time recorded in a segment."""

    names: frozenset[str]
    paths: Mapping[int, TimelinePath] = field(default_factory=dict)
    last_commit: Callable[[Segment], datetime | None] = _no_commit_times

    def path(self, timeline: int) -> TimelinePath:
        return self.paths.get(timeline) or (TimelineSpan(timeline, None, None),)

    def timelines(self) -> list[int]:
        found = set(self.paths)
        found.update(int(n[:8], 16) for n in self.names if SEGMENT_RE.match(n) or PARTIAL_RE.match(n))
        return sorted(found)

    def holds(self, segment: Segment) -> bool:
        return segment.name in self.names or segment.name + ".partial" in self.names


@dataclass(frozen=True)
class TargetPoint:
    """Where a target lies in the WAL, known before recovery: a position, and for a named
    restore point the timeline whose WAL holds its record (engines/postgres/targets.py)."""

    lsn: Lsn
    timeline: int | None
    what: str

    def on(self, path: TimelinePath) -> bool:
        """Whether recovery along `path` passes through it (always, when its branch is unknown)."""
        return self.timeline is None or on_path(path, self.timeline, self.lsn, self.lsn)


@dataclass(frozen=True)
class RestorePlan:
    backup: Manifest
    target: RecoveryTarget
    first_segment: str
    last_segment: str | None
    uses_partial: bool
    timeline: int = 1  # the timeline recovery follows: recovery_target_timeline
    path: TimelinePath = ()  # the spans of timelines from the backup to `timeline`
    chain: tuple[Manifest, ...] = ()  # an incremental `backup`: its chain, the full one first

    @property
    def links(self) -> tuple[Manifest, ...]:
        """The backups restored, in order: the chain of an incremental, else the backup."""
        return self.chain or (self.backup,)

    @property
    def crosses_timelines(self) -> bool:
        return len({s.timeline for s in self.path}) > 1


def usable_backups(
    backups: list[Manifest],
    target: RecoveryTarget,
    now: datetime,
    backup_id: str | None,
    point: TargetPoint | None = None,
    broken: Mapping[str, BrokenChainError] | None = None,
) -> list[Manifest]:
    """Base backups that end before the target, oldest first (never empty). An incremental
    whose chain is broken (`broken`) is left out, or refused by name when asked for."""
    broken = broken or {}
    if backup_id is not None and backup_id in broken:
        raise broken[backup_id]
    base = sorted(
        (m for m in backups if m.kind is BackupKind.BASE and m.postgres and m.backup_id not in broken),
        key=lambda m: (m.finished_at, m.backup_id),
    )
    if backup_id is not None:
        base = [m for m in base if m.backup_id == backup_id]
        if not base:
            raise NotFoundError(f"no base backup {backup_id} (PITR needs a base backup)")
    if not base:
        raise NotFoundError("no base backup to restore from", hint="take one: drkit backup")
    if target.kind is TargetKind.TIME and target.time is not None:
        if target.time > now:
            raise UnreachableTargetError(
                f"target time {target.time.isoformat()} is in the future (now {now.isoformat()})"
            )
        fit = [m for m in base if m.finished_at <= target.time]
        if not fit:
            raise UnreachableTargetError(
                f"target time {target.time.isoformat()} is before the end of the oldest usable "
                f"backup ({base[0].backup_id}, finished {base[0].finished_at.isoformat()})"
            )
        return fit
    if point is not None or (target.kind is TargetKind.LSN and target.lsn is not None):
        lsn = point.lsn if point is not None else target.lsn
        what = point.what if point is not None else f"target LSN {lsn}"
        fit = [m for m in base if lsn is not None and Lsn.parse(m.require_postgres().stop_lsn) <= lsn]
        if not fit:
            raise UnreachableTargetError(
                f"{what} is before the end of the oldest usable backup "
                f"({base[0].backup_id}, ends at {base[0].require_postgres().stop_lsn})"
            )
        return fit
    return base


def choose_backup(
    backups: list[Manifest], target: RecoveryTarget, now: datetime, backup_id: str | None
) -> Manifest:
    return usable_backups(backups, target, now, backup_id)[-1]


def descends(path: TimelinePath, m: Manifest) -> bool:
    pg = m.require_postgres()
    return on_path(path, pg.timeline, Lsn.parse(pg.start_lsn), Lsn.parse(pg.stop_lsn))


def choose_line(
    candidates: list[Manifest], archive: ArchiveView, timeline: int | None
) -> tuple[int, Manifest]:
    """The timeline to follow and the newest backup on its path. Without an explicit
    timeline: the newest one that descends from a usable backup."""
    if timeline is not None:
        fit = [m for m in candidates if descends(archive.path(timeline), m)]
        if not fit:
            raise UnreachableTargetError(
                f"timeline {timeline} does not descend from any usable base backup "
                f"(its history leaves their timelines before they end, or it is not archived)"
            )
        return timeline, fit[-1]
    own = {m.require_postgres().timeline for m in candidates}
    known = set(archive.timelines()) | own
    for tli in sorted(known, reverse=True):
        fit = [m for m in candidates if descends(archive.path(tli), m)]
        if fit:
            _refuse_unknown_branch(archive, tli, own)
            return tli, fit[-1]
    return candidates[-1].require_postgres().timeline, candidates[-1]  # unreachable: own line


def _refuse_unknown_branch(archive: ArchiveView, chosen: int, own: set[int]) -> None:
    """Newer WAL whose history file is missing: restoring the older branch instead would
    silently drop it, so say so (the history file is in the server's pg_wal)."""
    newest = max(archive.timelines(), default=chosen)
    if newest > chosen and newest not in archive.paths and newest not in own:
        raise UnreachableTargetError(
            f"WAL of timeline {newest} is archived but not its history file {newest:08X}.history; "
            f"drkit cannot tell where timeline {newest} left its parent and will not guess the branch",
            hint=f"archive it from the server: drkit wal-push PGDATA/pg_wal/{newest:08X}.history",
        )


def plan_restore(
    backups: list[Manifest],
    archive: ArchiveView,
    target: RecoveryTarget,
    now: datetime,
    backup_id: str | None = None,
    timeline: int | None = None,
    point: TargetPoint | None = None,
    damaged: Mapping[str, str] | None = None,
) -> RestorePlan:
    """`point`: where the target lies (required for a restore point's name: PostgreSQL
    would otherwise find out at the end of a replay whether the name exists on the branch).
    `damaged`: backups listed with an unreadable manifest (id -> why), which break the
    chains of the incrementals built on them."""
    if target.kind is TargetKind.NAME and point is None:
        raise NotFoundError(f"{target.describe()} was not located in the WAL archive")
    catalog = Catalog.of(backups, (damaged or {}).items())
    usable = usable_backups(backups, target, now, backup_id, point, broken_chains(catalog))
    tli, backup = choose_line(usable, archive, timeline)
    path = archive.path(tli)
    if (
        point is not None
        and point.timeline is not None
        and not on_path(path, point.timeline, point.lsn, point.lsn)
    ):
        raise UnreachableTargetError(
            f"{point.what} lies on timeline {point.timeline} at {point.lsn}, which timeline {tli} "
            f"does not pass through (it left that branch before)",
            hint=f"leave out --timeline, or give --timeline {point.timeline}",
        )
    pg = backup.require_postgres()
    size = pg.wal_segment_size
    start = Segment.containing(Lsn.parse(pg.start_lsn), pg.timeline, size)
    stop = Segment.containing(Lsn.parse(pg.stop_lsn), pg.timeline, size)
    until = _needed_until(archive, target, path, stop, point)
    report = check_path(set(archive.names), path, start, until)
    where = f" on timeline {tli}" if tli != pg.timeline else ""
    if report.missing is not None:
        raise UnreachableTargetError(
            f"WAL segment {report.missing.name} is missing from the archive; restoring backup "
            f"{backup.backup_id} to {target.describe()}{where} needs it",
            hint="choose an earlier target, or a later backup that starts after the gap",
        )
    if report.last is None or report.last.number < stop.number:
        missing = segment_on_path(path, report.last.number + 1 if report.last else start.number, size)
        raise UnreachableTargetError(
            f"WAL segment {missing.name} is missing from the archive; backup {backup.backup_id} "
            f"cannot be made consistent without it"
        )
    return RestorePlan(
        backup=backup,
        target=target,
        first_segment=start.name,
        last_segment=report.last.name,
        uses_partial=report.partial_tail,
        timeline=tli,
        path=path,
        chain=chain_of(backup, catalog) if backup.parent_id else (),
    )


def _needed_until(
    archive: ArchiveView, target: RecoveryTarget, path: TimelinePath, stop: Segment, point: TargetPoint | None
) -> int | None:
    """The number of the last segment the target needs, or None for "all there is"."""
    if target.kind is TargetKind.IMMEDIATE:
        return stop.number
    if point is not None:
        return max(stop.number, point.lsn.value // stop.size)
    if target.kind is TargetKind.LSN and target.lsn is not None:
        return max(stop.number, target.lsn.value // stop.size)
    if target.kind is TargetKind.TIME and target.time is not None:
        return segment_after(archive, target.time, path, stop)
    return None


def segment_after(archive: ArchiveView, when: datetime, path: TimelinePath, stop: Segment) -> int:
    """A segment on the path (from the backup's end) that records a commit after `when`:
    recovery stops before that commit, so the WAL needed ends there. Absent segments are
    stepped over here; the chain check then names them.

    Commit times rise along the WAL (up to the moment between taking a commit's time and
    inserting its record), so a binary search finds the first such segment reading about
    log2(n) segments, not all of them; whatever it returns does record a later commit."""
    numbers = sorted(
        s.number
        for s in (Segment.parse(n.removesuffix(".partial"), stop.size) for n in archive.names if _is_seg(n))
        if s.number >= stop.number and segment_on_path(path, s.number, stop.size) == s
    )
    known: dict[int, datetime | None] = {}

    def last(i: int) -> datetime | None:
        if i not in known:
            known[i] = archive.last_commit(segment_on_path(path, numbers[i], stop.size))
        return known[i]

    def nearest(i: int, floor: int) -> int:
        """The closest index at or before `i` (not below `floor`) whose segment commits."""
        while i >= floor and last(i) is None:
            i -= 1
        return i

    hi = nearest(len(numbers) - 1, 0)
    newest = last(hi) if hi >= 0 else None
    if newest is None or newest <= when:
        _after_the_end(when, newest, segment_on_path(path, numbers[hi], stop.size) if hi >= 0 else None)
    lo = 0
    while lo < hi:  # invariant: last(hi) > when; nothing before lo does
        mid = (lo + hi) // 2
        probe = nearest(mid, lo)
        found = last(probe) if probe >= lo else None
        if found is not None and found > when:
            hi = probe
        else:
            lo = mid + 1
    return numbers[hi]


def _after_the_end(when: datetime, newest: datetime | None, where: Segment | None) -> NoReturn:
    seen = "no commit recorded after the backup"
    if newest is not None and where is not None:
        seen = f"last commit recorded {newest.isoformat()}, in {where.name}"
    raise AfterArchiveEnd(
        f"target time {when.isoformat()} is after the end of the WAL archive ({seen}); "
        f"recovery stops at the first commit after the target, and none is archived yet",
        hint="with --yes drkit closes the primary's current WAL segment (and commits an empty "
        "transaction when nothing was committed since) and waits until it is archived; "
        "or choose an earlier time",
    )


class AfterArchiveEnd(UnreachableTargetError):
    """A time target later than the last archived commit: the primary may still hold what
    reaches it in its current WAL segment (engines/postgres/switch_wal.py)."""


def _is_seg(name: str) -> bool:
    return bool(SEGMENT_RE.match(name) or PARTIAL_RE.match(name))
