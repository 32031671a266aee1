"""Versions of the client tools (recorded in manifests, compared with the server's), and
the check that server binaries can run a data directory of a given major."""

from __future__ import annotations

import re
from functools import cache

from drkit.domain.errors import ToolError, UsageError
from drkit.infra.proc import find_tool, run


@cache
def tool_version(name: str, bin_dir: str | None = None) -> str:
    """`15.18` for `pg_basebackup (PostgreSQL) 15.18 (Debian ...)`, `18` for `18beta1`."""
    return parse_tool_version(run([find_tool(name, bin_dir), "--version"], timeout=30).stdout)


def parse_tool_version(out: str) -> str:
    """`15.18` for `pg_basebackup (PostgreSQL) 15.18 (Debian ...)`."""
    match = re.search(r"\)\s*(\d+(?:\.\d+)*)", out) or re.search(r"(\d+(?:\.\d+)*)", out)
    return match.group(1) if match else out.strip()


def major(version: str) -> int:
    """18 for `18.6`, 9 for `9.6.24` (no release before 10 is supported, but it parses)."""
    return int(version.split(".", maxsplit=1)[0])


def version_num_major(version_num: int) -> int:
    """18 for server_version_num 180006 (and 9 for 90624: before 10 the major had two parts)."""
    return version_num // 10000


def require_server_major(bin_dir: str | None, version_num: int) -> None:
    """Refuse to run a data directory of one major with another major's server: PostgreSQL
    would only refuse to start after the whole restore was written. Skipped when no server
    binary can be found (a runtime without bin_dir whose pg_ctl comes from PATH)."""
    wanted = version_num_major(version_num)
    try:
        have = major(tool_version("postgres", bin_dir))
    except ToolError:
        return
    if have != wanted:
        where = bin_dir or "PATH"
        raise UsageError(
            f"the backup is of PostgreSQL {wanted} but the server in {where} is PostgreSQL {have}",
            hint=f"set runtime.bin_dir to PostgreSQL {wanted}'s binaries (a data directory "
            "only runs under its own major)",
        )
