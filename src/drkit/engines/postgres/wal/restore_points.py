"""Named restore points in the archived WAL, found with pg_waldump.

`pg_create_restore_point('name')` writes a RESTORE_POINT record; `recovery_target_name`
stops there. drkit's own (sets) are recorded in the set file; any other name is looked for
in the WAL itself, so a restore to a name that is not there is refused before anything is
touched, not discovered by PostgreSQL at the end of a replay. Segments are read in short
runs (each run with the segment after it, so a record crossing a boundary is read whole)
into a scratch directory that is removed afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from drkit.adapters.postgres.waldump import restore_points
from drkit.domain.wal import PARTIAL_RE, SEGMENT_RE, Lsn, Segment, TimelineSpan, timeline_at
from drkit.engines.postgres.wal.archive import WalArchive

RUN = 8  # segments per pg_waldump run (plus the next one): at most 144 MiB of scratch


@dataclass(frozen=True, order=True)
class RestorePointRecord:
    timeline: int  # the timeline whose WAL holds the record (not a later copy of it)
    start: Lsn
    end: Lsn  # what pg_create_restore_point returned
    name: str


def find_restore_points(
    archive: WalArchive,
    names: set[str],
    paths: Mapping[int, tuple[TimelineSpan, ...]],
    wanted: str,
    *,
    numbers: range,
    size: int,
    bin_dir: str | None,
    scratch_parent: Path,
) -> list[RestorePointRecord]:
    """Every RESTORE_POINT record named `wanted` in the archived segments whose numbers are
    in `numbers`, on every timeline, each once (a child timeline's copy of its switch
    segment holds its parent's records too)."""
    found: set[RestorePointRecord] = set()
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="wal-names-", dir=scratch_parent))
    try:
        for timeline, run in _runs(names, numbers, size):
            path = paths.get(timeline) or (TimelineSpan(timeline, None, None),)
            for start, end, name in _dump_run(archive, scratch, run, bin_dir):
                if name == wanted:
                    found.add(RestorePointRecord(timeline_at(path, start), start, end, name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(found)


def _runs(names: set[str], numbers: range, size: int) -> Iterator[tuple[int, list[Segment]]]:
    """Contiguous runs of at most RUN archived segments (partials count) per timeline."""
    segments = sorted(
        Segment.parse(n.removesuffix(".partial"), size)
        for n in names
        if SEGMENT_RE.match(n) or PARTIAL_RE.match(n)
    )
    run: list[Segment] = []
    for seg in dict.fromkeys(s for s in segments if s.number in numbers):
        if run and (seg.timeline != run[-1].timeline or seg.number != run[-1].number + 1 or len(run) == RUN):
            yield run[0].timeline, run
            run = []
        run.append(seg)
    if run:
        yield run[0].timeline, run


def _dump_run(
    archive: WalArchive, scratch: Path, run: list[Segment], bin_dir: str | None
) -> list[tuple[Lsn, Lsn, str]]:
    for old in scratch.iterdir():
        if old.name not in {s.name for s in run}:
            old.unlink()
    for seg in [*run, run[-1].next()]:
        target = scratch / seg.name
        if not target.exists():
            raw = archive.read(seg.name)  # checked (and authenticated) like a fetch
            if raw is None:
                break  # the end of this timeline's archive
            target.write_bytes(raw)
    return restore_points(scratch, run[0].timeline, run[0].start, run[-1].next().start, bin_dir=bin_dir)
