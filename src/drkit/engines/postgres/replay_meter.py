"""WAL replay reported as an amount: how far recovery got from the backup's start, against
the WAL the plan found (to the end of its last segment), through the progress port."""

from __future__ import annotations

import re
from collections.abc import Callable

from drkit.domain.progress import Progress, Unit
from drkit.domain.wal import LSN_RE, Lsn, Segment
from drkit.engines.postgres.plan import RestorePlan

_SEGMENT_IN_TITLE = re.compile(r"\b([0-9A-F]{24})\b")


def replay_meter(report: Progress, chosen: RestorePlan) -> Callable[[str | None], None]:
    """A callback for what recovery_watch learns: `LSN 0/3000060`, or the startup process's
    title naming the segment being replayed."""
    pg = chosen.backup.require_postgres()
    size = pg.wal_segment_size
    start = Lsn.parse(pg.start_lsn).value
    end = Segment.parse(chosen.last_segment, size).next().start.value if chosen.last_segment else None
    meter = report.meter("replay WAL", total=end - start if end else None, unit=Unit.WAL)

    def seen(position: str | None) -> None:
        value = _position(position or "", size)
        if value is not None:
            meter(max(0, value - start))

    return seen


def _position(text: str, size: int) -> int | None:
    words = text.split()
    for word in words:
        if LSN_RE.match(word):
            return Lsn.parse(word).value
    found = _SEGMENT_IN_TITLE.search(text)
    return Segment.parse(found.group(1), size).start.value if found else None
