"""Commit times recorded in WAL, read with pg_waldump.

A commit (or abort) record carries the time the transaction ended: the clock PostgreSQL's
`recovery_target_time` is compared with. That is the only sound time for a segment: when
a file was stored says nothing once a repository has been copied or synced.
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


def parse_commit_times(output: str) -> list[datetime]:
    """Commit and abort times in pg_waldump output printed with TZ=UTC."""
    return [datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC) for m in _ENDED_RE.finditer(output)]


def commit_times(
    wal_dir: Path, timeline: int, start: Lsn, end: Lsn, *, bin_dir: str | None, timeout: float = 300
) -> list[datetime]:
    """Times of the commits and aborts whose records start in `start`..`end` on `timeline`
    (segment files in `wal_dir`; a record that runs on into the next file is read whole
    when that file is there too)."""
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
            "Transaction",
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
    return parse_commit_times(result.stdout)
