"""Per service, the moments its backups can restore to, in wall-clock time (as `pgbackrest
info` and `barman show-backup` show them): `drkit backups list`.

PostgreSQL: any moment from the end of the oldest base backup whose WAL runs on without a gap
(along its timelines) to the newest WAL file in the repository (or the newest base backup,
if later). Objects (versioned buckets): any moment from the oldest backup to the newest.
Other kinds: the moments of their backups, one restore point each. Read from the repository
alone (no server is asked), so it answers when the stack is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service
from drkit.domain.wal import Lsn, Segment
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.pg_capture import newest_wal_entry
from drkit.engines.postgres.plan import ArchiveView, choose_line
from drkit.engines.postgres.wal.archive import archive_for, check_path, timeline_paths


@dataclass(frozen=True)
class RecoveryWindow:
    service: str
    earliest: datetime | None  # None: nothing restorable
    latest: datetime | None
    continuous: bool  # any moment between (PITR, object versions), else `points` moments
    points: int  # backups it can start from
    detail: str  # how the window was found, or why it is shorter than the backups


def recovery_windows(ws: Workspace, backups: dict[str, list[Manifest]]) -> list[RecoveryWindow]:
    """`backups`: each service's complete backups (the listing `backups list` read)."""
    return [_window(ws, ws.stack.service(name), found) for name, found in backups.items()]


def _window(ws: Workspace, service: Service, found: list[Manifest]) -> RecoveryWindow:
    moments = sorted(m.finished_at for m in found)
    if not moments:
        return RecoveryWindow(service.name, None, None, False, 0, "no backup")
    if service.kind == "postgres":
        bases = sorted((m for m in found if m.kind is BackupKind.BASE), key=lambda m: m.finished_at)
        if bases:
            return _pitr(ws, service, bases, len(found))
    if service.kind == "s3":
        detail = "any moment between its oldest and newest backup (object versions)"
        return RecoveryWindow(service.name, moments[0], moments[-1], True, len(moments), detail)
    kinds = ", ".join(sorted({m.kind.value for m in found}))
    return RecoveryWindow(service.name, moments[0], moments[-1], False, len(moments), f"{kinds} backups")


def _pitr(ws: Workspace, service: Service, bases: list[Manifest], points: int) -> RecoveryWindow:
    try:
        archive = archive_for(ws, service)
        names = archive.names()
        view = ArchiveView(frozenset(names), timeline_paths(archive, names))
    except (DrkitError, OSError) as exc:
        detail = f"WAL archive not read ({exc}): base backups only"
        return RecoveryWindow(
            service.name, bases[0].finished_at, bases[-1].finished_at, False, points, detail
        )
    stored = newest_wal_entry(ws, service)
    latest = max(bases[-1].finished_at, stored[1]) if stored else bases[-1].finished_at
    for i, m in enumerate(bases):
        if _runs_on(view, m):
            skipped = f"; {i} older base backup(s) stop at a WAL gap" if i else ""
            newest = stored[0] if stored else "-"
            detail = f"any moment: {len(bases) - i} base backup(s) + WAL to {newest}{skipped}"
            return RecoveryWindow(service.name, m.finished_at, latest, True, points, detail)
    detail = "the WAL after every base backup has a gap: each restores to its own end only"
    return RecoveryWindow(service.name, bases[0].finished_at, bases[-1].finished_at, False, points, detail)


def _runs_on(view: ArchiveView, m: Manifest) -> bool:
    """The WAL from the backup's start runs on without a gap, past its end."""
    pg = m.require_postgres()
    start = Segment.containing(Lsn.parse(pg.start_lsn), pg.timeline, pg.wal_segment_size)
    stop = Segment.containing(Lsn.parse(pg.stop_lsn), pg.timeline, pg.wal_segment_size)
    try:
        timeline, _ = choose_line([m], view, None)
    except DrkitError:
        return False
    report = check_path(set(view.names), view.path(timeline), start)
    return report.missing is None and report.last is not None and report.last.number >= stop.number
