"""Have the WAL a recovery needs ready before the server starts asking for it.

The prefetcher (wal/prefetch.py) decompresses segments into the data directory's spool while
the restore runs; a segment PostgreSQL asks for before it is there falls back to a
`drkit wal-fetch` process, which costs an interpreter's start (seconds on a busy machine).
For a bounded recovery (a target time, LSN or name, or the backup's own end) the segments
needed are known: wait, before starting the server, until each is in the spool or known to
be absent. Never a reason to fail: past the deadline, or when the prefetcher stops making
progress, the server starts anyway and restore_command falls back as before.
"""

from __future__ import annotations

import os
from pathlib import Path

from drkit.domain.wal import Segment
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR
from drkit.infra.clock import Clock

WINDOW = 16  # the prefetcher keeps at most this many segments ahead
STALL = 5.0  # seconds without a new segment: the prefetcher has given up
DEADLINE = 60.0


def needed_first(chosen: RestorePlan) -> list[str]:
    """The segments recovery reads first: the backup's start up to one past the plan's last
    (recovery reads on to find where the WAL ends), at most a window of them."""
    pg = chosen.backup.require_postgres()
    segment = Segment.parse(chosen.first_segment, pg.wal_segment_size)
    last = Segment.parse(chosen.last_segment, pg.wal_segment_size) if chosen.last_segment else segment
    names: list[str] = []
    while len(names) < WINDOW and segment.number <= last.number + 1:
        names.append(segment.name)
        segment = segment.next()
    return names


def wait_prefetched(data_dir: Path, names: list[str], clock: Clock) -> bool:
    """Whether every one of `names` is in the spool (or marked absent) before the deadline."""
    spool = data_dir / PREFETCH_DIR
    started = moved = clock.monotonic()
    left = list(names)
    while True:
        still = [n for n in left if not (os.path.exists(spool / n) or os.path.exists(spool / f".absent-{n}"))]
        if not still:
            return True
        now = clock.monotonic()
        if len(still) < len(left):
            moved = now
        if now - moved > STALL or now - started > DEADLINE:
            return False
        left = still
        clock.sleep(0.02)
