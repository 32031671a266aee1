"""What a server's WAL holds after a position, read with pg_waldump from its pg_wal: the
commits (where each record starts and ends, when it committed) and where the WAL ends.

A failover uses it on the old primary's data directory: the commits after what the new
primary received are exactly the ones it lost (their count, their times), whether the old
primary stopped cleanly or not. pg_waldump's major version must be the server's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drkit.domain.errors import ToolError
from drkit.domain.wal import DEFAULT_SEGMENT_SIZE, Lsn
from drkit.infra.proc import find_tool, last_line, run

_RECORD_RE = re.compile(
    r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*\d+, lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F/]+, "
    r"desc: COMMIT(?:_PREPARED \d+:)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC"
)
_LSN_RE = re.compile(r"\b([0-9A-F]{1,8}/[0-9A-F]{1,8})\b")
_MISSING_FILE_RE = re.compile(r'could not find file "([0-9A-F]{24})"')
PAGE = 8192
LONG_PAGE_HEADER = 40  # at most this much of a record's span is page header, per page crossed


@dataclass(frozen=True)
class Commit:
    lsn: int  # where its record starts
    end: int  # where it ends at most (page headers it crosses counted)
    at: datetime


@dataclass(frozen=True)
class WalTail:
    start: int
    end: int  # where the readable WAL ends (== start: nothing after it)
    commits: tuple[Commit, ...]

    def commits_after(self, position: int) -> tuple[Commit, ...]:
        """The commits not wholly before `position` (a record cut there is not replayable)."""
        return tuple(c for c in self.commits if c.end > position)


def _lsn(text: str) -> int:
    return Lsn.parse(text).value


def parse_commits(output: str) -> tuple[Commit, ...]:
    found = []
    for m in _RECORD_RE.finditer(output):
        start, size = _lsn(m.group(2)), int(m.group(1))
        crossed = (start % PAGE + size) // PAGE
        at = datetime.fromisoformat(m.group(3)).replace(tzinfo=UTC)
        found.append(Commit(start, start + size + crossed * LONG_PAGE_HEADER, at))
    return tuple(found)


def end_of_wal(stderr: str, start: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """Where pg_waldump ran out of WAL, from its last error line. A missing segment file past
    the first one is the end too; the first one missing means the WAL is not there at all."""
    errors = [line for line in stderr.splitlines() if "error:" in line]
    if not errors:
        raise ToolError(f"pg_waldump stopped without saying where the WAL ends: {last_line(stderr)}")
    line = errors[-1]
    missing = _MISSING_FILE_RE.search(line)
    if missing:
        name = missing.group(1)
        number = int(name[8:16], 16) * (0x100000000 // segment_size) + int(name[16:24], 16)
        position = number * segment_size
        if position <= start:
            raise ToolError(f"pg_waldump: the WAL at {Lsn(start)} is not there ({name} missing)")
        return position
    if "could not find a valid record after" in line:
        return start
    if "error in WAL record at" in line or "invalid record" in line or "incorrect prev-link" in line:
        positions = _LSN_RE.findall(line.split(":", 2)[-1])
        if positions:
            return max(start, _lsn(positions[-1]))
    raise ToolError(
        f"pg_waldump cannot read the WAL after {Lsn(start)}: {line.split('error:', 1)[-1].strip()}"
    )


def read_tail(
    wal_dir: Path, timeline: int, start: int, *, bin_dir: str | None, timeout: float = 60
) -> WalTail:
    """The commits from `start` to the end of the WAL in `wal_dir` on `timeline`."""
    result = run(
        [
            find_tool("pg_waldump", bin_dir),
            "--path",
            str(wal_dir),
            "--timeline",
            str(timeline),
            "--start",
            str(Lsn(start)),
            "--rmgr",
            "Transaction",
        ],
        timeout=timeout,
        check=False,
        env={"TZ": "UTC", "LC_ALL": "C"},
    )
    commits = parse_commits(result.stdout)
    end = end_of_wal(result.stderr, start) if result.returncode != 0 else None
    if end is None:  # pg_waldump always ends on an error without --end; be safe anyway
        raise ToolError(f"pg_waldump ended without an end of WAL: {last_line(result.stderr)}")
    last = max((c.end for c in commits), default=start)
    return WalTail(start, max(end, last), commits)
