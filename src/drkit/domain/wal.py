"""PostgreSQL WAL positions and segment names, as pure arithmetic.

A segment file name is TTTTTTTTXXXXXXXXYYYYYYYY: timeline, then the segment number split
into a "log" part and a "seg" part, where seg counts 0 .. (4 GiB / segment size) - 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
PARTIAL_RE = re.compile(r"^[0-9A-F]{24}\.partial$")
HISTORY_RE = re.compile(r"^[0-9A-F]{8}\.history$")
BACKUP_LABEL_RE = re.compile(r"^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$")
LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True, order=True)
class Lsn:
    """A WAL position (`16/B374D848`)."""

    value: int

    @classmethod
    def parse(cls, text: str) -> Lsn:
        match = LSN_RE.match(text.strip())
        if not match:
            raise ValueError(f"bad LSN {text!r}: expected the form 16/B374D848")
        return cls((int(match.group(1), 16) << 32) | int(match.group(2), 16))

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"


@dataclass(frozen=True, order=True)
class Segment:
    """One WAL segment: its timeline and its number (LSN // segment size)."""

    timeline: int
    number: int
    size: int = DEFAULT_SEGMENT_SIZE

    @property
    def per_log(self) -> int:
        return 0x100000000 // self.size

    @property
    def name(self) -> str:
        log, seg = divmod(self.number, self.per_log)
        return f"{self.timeline:08X}{log:08X}{seg:08X}"

    @property
    def start(self) -> Lsn:
        return Lsn(self.number * self.size)

    def next(self) -> Segment:
        return Segment(self.timeline, self.number + 1, self.size)

    def on_timeline(self, timeline: int) -> Segment:
        return Segment(timeline, self.number, self.size)

    @classmethod
    def containing(cls, lsn: Lsn, timeline: int, size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
        return cls(timeline, lsn.value // size, size)

    @classmethod
    def parse(cls, name: str, size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
        if not SEGMENT_RE.match(name):
            raise ValueError(f"not a WAL segment name: {name!r}")
        per_log = 0x100000000 // size
        return cls(int(name[:8], 16), int(name[8:16], 16) * per_log + int(name[16:], 16), size)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class TimelineSwitch:
    """One line of a timeline history file: `parent` ended at `switch_lsn`."""

    parent: int
    switch_lsn: Lsn


def parse_history(text: str) -> list[TimelineSwitch]:
    """Parse a `0000000N.history` file: lines of `parentTLI<TAB>switchpoint<TAB>reason`,
    oldest ancestor first. Parents must rise and switch points must not go back."""
    switches: list[TimelineSwitch] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or not fields[0].isdigit():
            raise ValueError(f"bad timeline history line: {line!r}")
        switch = TimelineSwitch(int(fields[0]), Lsn.parse(fields[1]))
        if switches and (switch.parent <= switches[-1].parent or switch.switch_lsn < switches[-1].switch_lsn):
            raise ValueError(f"timeline history out of order at line {line!r}")
        switches.append(switch)
    return switches


@dataclass(frozen=True)
class TimelineSpan:
    """The part of a timeline that one history path runs on: WAL from `begin` (None: from
    the start) up to `end` (None: the newest timeline of the path, open-ended)."""

    timeline: int
    begin: Lsn | None
    end: Lsn | None

    def holds(self, lsn: Lsn) -> bool:
        return (self.begin is None or self.begin <= lsn) and (self.end is None or lsn <= self.end)


def timeline_path(timeline: int, history: list[TimelineSwitch]) -> tuple[TimelineSpan, ...]:
    """The spans recovery follows to reach `timeline`, given that timeline's history file."""
    spans: list[TimelineSpan] = []
    begin: Lsn | None = None
    for switch in history:
        spans.append(TimelineSpan(switch.parent, begin, switch.switch_lsn))
        begin = switch.switch_lsn
    if spans and spans[-1].timeline >= timeline:
        raise ValueError(f"history of timeline {timeline} names a parent that is not older")
    spans.append(TimelineSpan(timeline, begin, None))
    return tuple(spans)


def on_path(path: tuple[TimelineSpan, ...], timeline: int, start: Lsn, stop: Lsn) -> bool:
    """True when WAL `start`..`stop` of `timeline` (a base backup) lies on the path: the
    path leaves that timeline, if at all, at or after `stop`."""
    return any(s.timeline == timeline and s.holds(start) and s.holds(stop) for s in path)


def timeline_at(path: tuple[TimelineSpan, ...], lsn: Lsn) -> int:
    """Whose WAL a position on `path` is: the span holding it (a switch point is the child's)."""
    found = path[0].timeline
    for span in path:
        if span.holds(lsn):
            found = span.timeline
    return found


def segment_on_path(path: tuple[TimelineSpan, ...], number: int, size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    """Which timeline's file recovery reads for segment `number`: the newest timeline that
    began at or before that segment (the switch segment comes from the new timeline, whose
    copy holds the old WAL up to the switch point)."""
    timeline = path[0].timeline
    for span in path:
        if span.begin is None or span.begin.value // size <= number:
            timeline = span.timeline
    return Segment(timeline, number, size)


def timeline_of(name: str) -> int:
    """Timeline number from a segment, partial, backup-label or history file name."""
    return int(name[:8], 16)


def is_wal_file_name(name: str) -> bool:
    return bool(
        SEGMENT_RE.match(name)
        or PARTIAL_RE.match(name)
        or HISTORY_RE.match(name)
        or BACKUP_LABEL_RE.match(name)
    )
