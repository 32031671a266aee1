"""Commit times and named restore points recorded in WAL, read with pg_waldump.

A commit (or abort) record carries the time the transaction ended: the clock PostgreSQL's
`recovery_target_time` is compared with. That is the only sound time for a segment: when
a file was stored says nothing once a repository has been copied or synced. A
`RESTORE_POINT` record (pg_create_restore_point) is where `recovery_target_name` stops.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from drkit.domain.errors import ToolError
from drkit.domain.wal import Lsn
from drkit.infra.proc import find_tool, run

# `desc: COMMIT 2026-11-30 04:48:23.650926 UTC; ...`, `desc: COMMIT_PREPARED 731: 2026-...`
_ENDED_RE = re.compile(
    r"desc: (?:COMMIT|ABORT)(?:_PREPARED \d+:)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC"
)
# What pg_waldump says when it simply runs out of WAL (not a failure to read the file).
_END_OF_WAL = ("error in WAL record at", "could not find file", "could not read file")


# `rmgr: XLOG len (rec/tot): 98/ 98, tx: 0, lsn: 0/01500790, prev 0/..., desc: RESTORE_POINT my point`
_RESTORE_POINT_RE = re.compile(
    r"len \(rec/tot\):\s*\d+/\s*(\d+),.*?lsn: ([0-9A-F]+/[0-9A-F]+),.*?desc: RESTORE_POINT (.*)$",
    re.MULTILINE,
)


def parse_restore_points(output: str) -> list[tuple[Lsn, Lsn, str]]:
    """(start, end, name) of each RESTORE_POINT record in pg_waldump output; the end is where
    pg_create_restore_point's returned position lies (the next record, 8-byte aligned)."""
    out = []
    for m in _RESTORE_POINT_RE.finditer(output):
        start = Lsn.parse(m.group(2))
        end = (start.value + int(m.group(1)) + 7) // 8 * 8
        out.append((start, Lsn(end), m.group(3)))
    return out


def parse_commit_times(output: str) -> list[datetime]:
    """Commit and abort times in pg_waldump output printed with TZ=UTC."""
    return [datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC) for m in _ENDED_RE.finditer(output)]


def commit_times(
    wal_dir: Path, timeline: int, start: Lsn, end: Lsn, *, bin_dir: str | None, timeout: float = 300
) -> list[datetime]:
    """Times of the commits and aborts whose records start in `start`..`end` on `timeline`
    (segment files in `wal_dir`; a record that runs on into the next file is read whole
    when that file is there too)."""
    return parse_commit_times(_dump(wal_dir, timeline, start, end, "Transaction", bin_dir, timeout))


def restore_points(
    wal_dir: Path, timeline: int, start: Lsn, end: Lsn, *, bin_dir: str | None, timeout: float = 300
) -> list[tuple[Lsn, Lsn, str]]:
    """The named restore points whose records start in `start`..`end` on `timeline`."""
    return parse_restore_points(_dump(wal_dir, timeline, start, end, "XLOG", bin_dir, timeout))


def _dump(
    wal_dir: Path, timeline: int, start: Lsn, end: Lsn, rmgr: str, bin_dir: str | None, timeout: float
) -> str:
    result = run(
        [
            find_tool("pg_waldump", bin_dir),
            "--path",
            str(wal_dir),
            "--timeline",
            str(timeline),
            "--start",
            str(start),
            "--end",
            str(end),
            "--rmgr",
            rmgr,
        ],
        timeout=timeout,
        check=False,
        env={"TZ": "UTC", "LC_ALL": "C"},
    )
    if result.returncode != 0 and not result.stdout.strip():
        errors = [ln for ln in result.stderr.splitlines() if "error:" in ln]
        if not errors or not any(marker in errors[0] for marker in _END_OF_WAL):
            detail = errors[0].split("error:", 1)[1].strip() if errors else "(no output)"
            raise ToolError(f"pg_waldump cannot read WAL from {start} on timeline {timeline}: {detail}")
    return result.stdout
