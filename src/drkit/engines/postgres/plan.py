"""Decide a PostgreSQL restore before touching anything: which base backup, which WAL, and
whether the target can be reached at all (a gap, before the oldest backup, in the future)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import NotFoundError, UnreachableTargetError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.wal import PARTIAL_RE, SEGMENT_RE, Lsn, Segment, timeline_of
from drkit.engines.postgres.wal.archive import check_chain


@dataclass(frozen=True)
class ArchiveView:
    """What the WAL archive holds: names, and when each was pushed."""

    pushed_at: dict[str, datetime]

    @property
    def names(self) -> set[str]:
        return set(self.pushed_at)


@dataclass(frozen=True)
class RestorePlan:
    backup: Manifest
    target: RecoveryTarget
    first_segment: str
    last_segment: str | None
    uses_partial: bool


def choose_backup(
    backups: list[Manifest], target: RecoveryTarget, now: datetime, backup_id: str | None
) -> Manifest:
    base = sorted(
        (m for m in backups if m.kind is BackupKind.BASE and m.postgres),
        key=lambda m: (m.finished_at, m.backup_id),
    )
    if backup_id is not None:
        chosen = [m for m in base if m.backup_id == backup_id]
        if not chosen:
            raise NotFoundError(f"no base backup {backup_id} (PITR needs a base backup)")
        base = chosen
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
        return fit[-1]
    if target.kind is TargetKind.LSN and target.lsn is not None:
        lsn = target.lsn
        fit = [m for m in base if m.postgres and Lsn.parse(m.postgres.stop_lsn) <= lsn]
        if not fit:
            raise UnreachableTargetError(
                f"target LSN {lsn} is before the end of the oldest usable backup "
                f"({base[0].backup_id}, ends at {base[0].postgres.stop_lsn if base[0].postgres else '?'})"
            )
        return fit[-1]
    return base[-1]


def plan_restore(
    backups: list[Manifest],
    archive: ArchiveView,
    target: RecoveryTarget,
    now: datetime,
    backup_id: str | None = None,
) -> RestorePlan:
    backup = choose_backup(backups, target, now, backup_id)
    pg = backup.require_postgres()
    size = pg.wal_segment_size
    start = Segment.containing(Lsn.parse(pg.start_lsn), pg.timeline, size)
    stop = Segment.containing(Lsn.parse(pg.stop_lsn), pg.timeline, size)
    until = _needed_until(archive, target, start, stop)
    report = check_chain(archive.names, start, until)
    if report.missing is not None:
        raise UnreachableTargetError(
            f"WAL segment {report.missing.name} is missing from the archive; restoring backup "
            f"{backup.backup_id} to {target.describe()} needs it",
            hint="choose an earlier target, or a later backup that starts after the gap",
        )
    if report.last is None or report.last.number < stop.number:
        missing = (report.last.next() if report.last else start).name
        raise UnreachableTargetError(
            f"WAL segment {missing} is missing from the archive; backup {backup.backup_id} "
            f"cannot be made consistent without it"
        )
    return RestorePlan(
        backup=backup,
        target=target,
        first_segment=start.name,
        last_segment=report.last.name,
        uses_partial=report.partial_tail,
    )


def _needed_until(
    archive: ArchiveView, target: RecoveryTarget, start: Segment, stop: Segment
) -> Segment | None:
    """The last segment the target needs, or None for "all there is" (latest, a name)."""
    if target.kind is TargetKind.IMMEDIATE:
        return stop
    if target.kind is TargetKind.LSN and target.lsn is not None:
        return max(stop, Segment.containing(target.lsn, start.timeline, start.size))
    if target.kind is TargetKind.TIME and target.time is not None:
        on_timeline = sorted(
            (Segment.parse(n.removesuffix(".partial"), start.size), t)
            for n, t in archive.pushed_at.items()
            if (SEGMENT_RE.match(n) or PARTIAL_RE.match(n))
            and timeline_of(n) == start.timeline
            and Segment.parse(n.removesuffix(".partial"), start.size).number >= stop.number
        )
        # A segment pushed at or after the target time holds WAL written up to the target.
        for segment, pushed in on_timeline:
            if pushed >= target.time:
                return max(segment, stop)
        last = max((t for _s, t in on_timeline), default=None)
        raise UnreachableTargetError(
            f"target time {target.time.isoformat()} is after the end of the WAL archive "
            f"(last segment archived {last.isoformat() if last else 'never'})",
            hint="if the primary is up, run `select pg_switch_wal()` on it and retry, "
            "or choose an earlier time",
        )
    return None
