"""Which branch of the WAL history a recovery target is on.

Every PITR starts a new timeline and leaves the old one where it forked; the old branch's
WAL after the fork stays archived. PostgreSQL's `latest` follows the newest timeline, so a
target that lies on an abandoned branch (a set's restore point taken before a later PITR
undid it, an LSN or a time only that branch reached) is never met: recovery ends with
"recovery ended before configured recovery target was reached" after the data directory
was replaced. The plan therefore resolves the target on the branch that holds it:

- a named restore point's record is on one timeline (found in the set or the WAL): the plan
  follows a timeline whose history passes through it;
- an LSN, or a time (where recovery stops: the first commit after it, read from the WAL),
  is looked for on every branch a usable backup reaches. If those that reach it agree (the
  position is on the history they share), the newest is followed; if they differ, the
  target is ambiguous and refused, naming the branches, until `--timeline` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drkit.domain.backup import Manifest
from drkit.domain.errors import UnreachableTargetError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.wal import Lsn, Segment, segment_on_path, timeline_at
from drkit.engines.postgres.plan import ArchiveView, TargetPoint, descends, segment_after, usable_backups


@dataclass(frozen=True)
class Reach:
    """One timeline that reaches the target, and whose WAL the target's position is."""

    timeline: int
    owner: int


def resolve_timeline(
    backups: list[Manifest],
    archive: ArchiveView,
    target: RecoveryTarget,
    now: datetime,
    backup_id: str | None,
    point: TargetPoint | None,
) -> int | None:
    """The timeline the plan must follow for `target`; None: the default (the newest that
    descends from a usable backup), which is right for "latest" and for a target on the
    history every branch shares."""
    if target.timeline is not None:
        return target.timeline
    fits = usable_backups(backups, target, now, backup_id, point)
    lines = _lines(fits, archive)
    if point is not None and point.timeline is not None:
        through = [tli for tli in lines if point.on(archive.path(tli))]
        if not through:
            raise UnreachableTargetError(
                f"{point.what} lies on timeline {point.timeline} at {point.lsn}, and no usable "
                f"base backup reaches it there"
            )
        return through[0]
    if point is None and not (target.kind is TargetKind.TIME and target.time is not None):
        return None
    reaches = _reaches(lines, fits, archive, target, point)
    owners = list(dict.fromkeys(r.owner for r in reaches))
    if len(owners) > 1:
        raise _ambiguous(target, point, reaches, owners)
    return reaches[0].timeline if reaches else None


def _lines(fits: list[Manifest], archive: ArchiveView) -> list[int]:
    """Timelines (newest first) that descend from a usable backup."""
    known = set(archive.timelines()) | {m.require_postgres().timeline for m in fits}
    return [t for t in sorted(known, reverse=True) if any(descends(archive.path(t), m) for m in fits)]


def _reaches(
    lines: list[int],
    fits: list[Manifest],
    archive: ArchiveView,
    target: RecoveryTarget,
    point: TargetPoint | None,
) -> list[Reach]:
    """For each line that reaches the target: whose WAL the position is. A time is placed at
    the segment recording the first commit after it (where recovery stops); a line whose
    WAL ends before that does not reach it. When none does, the newest line's refusal says why."""
    out: list[Reach] = []
    refusal: UnreachableTargetError | None = None
    for tli in lines:
        path = archive.path(tli)
        backup = [m for m in fits if descends(path, m)][-1]
        pg = backup.require_postgres()
        size = pg.wal_segment_size
        if point is not None:
            where = segment_on_path(path, point.lsn.value // size, size)
            if archive.holds(where):
                out.append(Reach(tli, timeline_at(path, point.lsn)))
            continue
        stop = Segment.containing(Lsn.parse(pg.stop_lsn), pg.timeline, size)
        try:
            number = segment_after(archive, target.time, path, stop)  # type: ignore[arg-type]
        except UnreachableTargetError as exc:
            refusal = refusal or exc
            continue
        out.append(Reach(tli, segment_on_path(path, number, size).timeline))
    if not out and refusal is not None:
        raise refusal
    return out


def _ambiguous(
    target: RecoveryTarget, point: TargetPoint | None, reaches: list[Reach], owners: list[int]
) -> UnreachableTargetError:
    what = point.what if point is not None else target.describe()
    owners = sorted(owners)
    branches = [f"timeline {o}" + (" (a later PITR left it)" if o != owners[-1] else "") for o in owners]
    choices = " or ".join(f"--timeline {next(r.timeline for r in reaches if r.owner == o)}" for o in owners)
    return UnreachableTargetError(
        f"{what} is on {len(owners)} branches of the WAL history, which differ there: "
        f"{', '.join(branches)}; both were archived, and drkit will not guess which is meant",
        hint=f"say which branch: {choices} (`drkit verify` shows how far each timeline reaches)",
    )
