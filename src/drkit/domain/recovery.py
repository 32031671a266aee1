"""Where a recovery should stop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from drkit.domain.wal import Lsn


class TargetKind(StrEnum):
    LATEST = "latest"
    TIME = "time"
    LSN = "lsn"
    NAME = "name"
    IMMEDIATE = "immediate"  # the backup's own consistent point, no further WAL


@dataclass(frozen=True)
class RecoveryTarget:
    kind: TargetKind = TargetKind.LATEST
    time: datetime | None = None
    lsn: Lsn | None = None
    name: str | None = None
    timeline: int | None = None  # the branch it is on, when the operator says (--timeline)

    def describe(self) -> str:
        on = f" on timeline {self.timeline}" if self.timeline is not None else ""
        return self._what() + on

    def _what(self) -> str:
        if self.kind is TargetKind.TIME and self.time is not None:
            return f"time {self.time.isoformat()}"
        if self.kind is TargetKind.LSN and self.lsn is not None:
            return f"LSN {self.lsn}"
        if self.kind is TargetKind.NAME:
            return f"restore point {self.name!r}"
        if self.kind is TargetKind.IMMEDIATE:
            return "end of the backup"
        return "latest"

    def settings(self) -> dict[str, str]:
        """The recovery_target_* settings for postgresql.auto.conf (PostgreSQL 12+)."""
        if self.kind is TargetKind.TIME and self.time is not None:
            return {"recovery_target_time": self.time.isoformat(sep=" ")}
        if self.kind is TargetKind.LSN and self.lsn is not None:
            return {"recovery_target_lsn": str(self.lsn)}
        if self.kind is TargetKind.NAME and self.name is not None:
            return {"recovery_target_name": self.name}
        if self.kind is TargetKind.IMMEDIATE:
            return {"recovery_target": "immediate"}
        return {}


def parse_target_time(text: str) -> datetime:
    """ISO 8601 (`2026-02-09T14:30:00Z`, `2026-02-09 14:30:00+01:00`, `... UTC`); naive = UTC."""
    raw = text.strip()
    if raw.upper().endswith(" UTC"):
        raw = raw[:-4]
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    value = datetime.fromisoformat(raw)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def target_from_args(
    time: str | None, lsn: str | None, name: str | None, timeline: int | None = None
) -> RecoveryTarget:
    """At most one of a time, an LSN or a restore point's name; none means latest; the
    timeline, when given, is the branch to follow. ValueError names what is wrong (two
    given, a time or LSN that does not parse, a timeline below 1)."""
    given = [x for x in (time, lsn, name) if x]
    if len(given) > 1:
        raise ValueError("give at most one of --target-time, --target-lsn, --target-name")
    if timeline is not None and timeline < 1:
        raise ValueError(f"--timeline {timeline}: timelines are numbered from 1")
    if time:
        return RecoveryTarget(TargetKind.TIME, time=parse_target_time(time), timeline=timeline)
    if lsn:
        return RecoveryTarget(TargetKind.LSN, lsn=Lsn.parse(lsn), timeline=timeline)
    if name:
        return RecoveryTarget(TargetKind.NAME, name=name, timeline=timeline)
    return RecoveryTarget(timeline=timeline)
