"""redis-check-rdb and redis-check-aof as typed calls, each with a timeout: one verdict per
call, naming the file at fault.

redis-check-aof takes a multi-part AOF's manifest and checks every base and incr file it
lists (a base in RDB format is checked as an RDB, checksum included); it checks the
format of commands, not their values, so a damaged value inside a well-formed command
passes. An RDB carries a CRC64: any damaged byte fails it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from drkit.infra.proc import find_tool, last_line, run

BYTES_PER_SECOND = 20 * 1024 * 1024  # slowest rate we allow the checkers, for their timeout
BASE_TIMEOUT = 120.0
_ANALYZED = re.compile(r"AOF analyzed: filename=([^,]+), size=(\d+), ok_up_to=(\d+), .*diff=(\d+)")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    file: str  # the file at fault, or the one checked when all is well
    detail: str


def check_rdb(path: Path, *, timeout: float | None = None) -> Verdict:
    code, output = _run(["redis-check-rdb", str(path)], timeout or _timeout(path))
    return rdb_verdict(code, output, path.name)


def check_aof(path: Path, *, timeout: float | None = None) -> Verdict:
    """`path` is a multi-part AOF's manifest (the whole set is checked) or one AOF file."""
    code, output = _run(["redis-check-aof", str(path)], timeout or _timeout(path.parent))
    return aof_verdict(code, output, path.name)


def _run(args: list[str], timeout: float) -> tuple[int, str]:
    """The checkers echo a damaged file's bytes verbatim; infra.proc.run decodes leniently."""
    done = run([find_tool(args[0]), *args[1:]], timeout=timeout, check=False)
    return done.returncode, done.stdout + "\n" + done.stderr


def _timeout(path: Path) -> float:
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    else:
        size = path.stat().st_size if path.exists() else 0
    return BASE_TIMEOUT + size / BYTES_PER_SECOND


def rdb_verdict(returncode: int, output: str, name: str) -> Verdict:
    if returncode == 0 and "RDB looks OK" in output:
        keys = re.search(r"\[info\] (\d+) keys read", output)
        return Verdict(True, name, f"RDB looks OK ({keys.group(1) if keys else '?'} keys)")
    return Verdict(False, name, _rdb_problem(output) or last_line(output))


def _rdb_problem(output: str) -> str | None:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if "RDB ERROR DETECTED" in line and i + 1 < len(lines):
            return lines[i + 1]
    return None


def aof_verdict(returncode: int, output: str, name: str) -> Verdict:
    if returncode == 0 and "not valid" not in output and re.search(r"\b(is|are) valid\b", output):
        return Verdict(True, name, last_line(output))
    return Verdict(False, _aof_culprit(output) or name, _aof_problem(output) or last_line(output))


def _aof_culprit(output: str) -> str | None:
    for pattern in (r"AOF (\S+) is not valid", r"Cannot open file (\S+?):?\s", r"AOF (\S+) format error"):
        found = re.search(pattern, output)
        if found:
            return os.path.basename(str(found.group(1)))
    if "not sane" in output:
        checked = re.findall(r"Checking RDB file (\S+)", output)
        if checked:
            return os.path.basename(str(checked[-1]))
    for analyzed in _ANALYZED.finditer(output):
        if int(analyzed.group(4)):
            return os.path.basename(analyzed.group(1))
    return None


def _aof_problem(output: str) -> str | None:
    rdb = _rdb_problem(output)
    if rdb:
        return f"its RDB part is damaged: {rdb}"
    for analyzed in _ANALYZED.finditer(output):
        size, ok_up_to, diff = int(analyzed.group(2)), int(analyzed.group(3)), int(analyzed.group(4))
        if diff:
            return f"not a valid AOF after byte {ok_up_to} of {size}"
    for pattern in (r"Cannot open file .*", r"Invalid AOF manifest.*", r"\S.*AOF manifest.*missing.*"):
        found = re.search(pattern, output)
        if found:
            return found.group(0).strip()
    return None
