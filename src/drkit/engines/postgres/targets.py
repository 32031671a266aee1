"""Where a recovery target lies, found before anything is touched (the plan's inputs).

A restore point's name is looked up first among drkit's own (each stack-wide set records
its restore point: name, position and timeline), then in the archived WAL (pg_waldump's
RESTORE_POINT records, from the oldest base backup on, on every timeline). A name found
nowhere, or found more than once where `--timeline` does not settle it, is refused: the
replay would otherwise run to the end of the WAL and fail there, after the data directory
was replaced.
"""

from __future__ import annotations

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import NotFoundError, ToolError, UnreachableTargetError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.sets import RestoreSet
from drkit.domain.stack import Service
from drkit.domain.wal import DEFAULT_SEGMENT_SIZE, Lsn, Segment, on_path
from drkit.engines.core.set_refs import list_sets
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.plan import ArchiveView, TargetPoint
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.postgres.wal.restore_points import RestorePointRecord, find_restore_points

NO_END = 1 << 62


def target_point(
    ws: Workspace,
    service: Service,
    target: RecoveryTarget,
    archive: WalArchive,
    view: ArchiveView,
    backups: list[Manifest],
) -> TargetPoint | None:
    """The position an LSN or a restore point's name stands for; None for other targets."""
    if target.kind is TargetKind.LSN and target.lsn is not None:
        return TargetPoint(target.lsn, None, f"target LSN {target.lsn}")
    if target.kind is not TargetKind.NAME or not target.name:
        return None
    finder = _Finder(ws, service, archive, view, backups)
    for s in list_sets(ws):
        if s.restore_point == target.name:
            return finder.of_set(s)
    return finder.in_wal(target.name, target.timeline)


class _Finder:
    def __init__(
        self, ws: Workspace, service: Service, archive: WalArchive, view: ArchiveView, backups: list[Manifest]
    ) -> None:
        self.ws, self.service, self.archive, self.view = ws, service, archive, view
        self.bases = [m for m in backups if m.kind is BackupKind.BASE and m.postgres]
        self.size = self.bases[0].require_postgres().wal_segment_size if self.bases else DEFAULT_SEGMENT_SIZE

    def _scan(self, name: str, numbers: range) -> list[RestorePointRecord]:
        return find_restore_points(
            self.archive,
            set(self.view.names),
            self.view.paths,
            name,
            numbers=numbers,
            size=self.size,
            bin_dir=self.service.runtime.bin_dir,
            scratch_parent=self.ws.state_dir / "wal-names",
        )

    def of_set(self, s: RestoreSet) -> TargetPoint:
        """A set's restore point: its record ends at the recorded position. Its timeline is
        in the set (sets older than that field: read from the segment holding it)."""
        end = Lsn.parse(s.restore_point_lsn)
        inside = Lsn(end.value - 1)
        timeline = s.restore_point_timeline
        if timeline is None:
            number = inside.value // self.size
            try:
                found = [r for r in self._scan(s.restore_point, range(number, number + 1)) if r.end == end]
            except ToolError:
                found = []  # no pg_waldump here: the position alone, checked for ambiguity
            timeline = found[0].timeline if len(found) == 1 else None
        return TargetPoint(inside, timeline, f"restore point {s.restore_point!r} (set {s.set_id})")

    def in_wal(self, name: str, pinned: int | None) -> TargetPoint:
        starts = [Lsn.parse(m.require_postgres().start_lsn) for m in self.bases]
        first = min((Segment.containing(lsn, 1, self.size).number for lsn in starts), default=0)
        try:
            records = self._scan(name, range(first, NO_END))
        except ToolError as exc:
            raise ToolError(
                f"cannot look for restore point {name!r} in the archived WAL: {exc.message}",
                hint="install the server's major's client tools (pg_waldump), or restore to "
                "--target-lsn / --target-time instead",
            ) from exc
        if pinned is not None:
            path = self.view.path(pinned)
            records = [r for r in records if on_path(path, r.timeline, r.start, r.start)]
        if not records:
            on = f" on timeline {pinned}'s history" if pinned is not None else ""
            raise NotFoundError(
                f"no restore point named {name!r}{on}: no set of drkit's has it, and the archived "
                f"WAL after the oldest base backup holds no such RESTORE_POINT record",
                hint="names are case-sensitive; one created with pg_create_restore_point() is "
                "found once its segment is archived (`select pg_switch_wal()` on the server)",
            )
        if len(records) > 1:
            where = ", ".join(f"timeline {r.timeline} ending at {r.end}" for r in records)
            raise UnreachableTargetError(
                f"restore point {name!r} is in the WAL {len(records)} times ({where}); recovery "
                f"stops at the first one on its way, which may not be the one meant",
                hint="say which: --timeline N when they are on different branches, or "
                "--target-lsn with the position instead of the name",
            )
        record = records[0]
        return TargetPoint(Lsn(record.end.value - 1), record.timeline, f"restore point {name!r}")
