"""Versions of the client tools (recorded in manifests, compared with the server's)."""

from __future__ import annotations

import re
from functools import cache

from drkit.infra.proc import find_tool, run


@cache
def tool_version(name: str, bin_dir: str | None = None) -> str:
    """`15.18` for `pg_basebackup (PostgreSQL) 15.18 (Debian ...)`."""
    out = run([find_tool(name, bin_dir), "--version"], timeout=30).stdout
    match = re.search(r"(\d+(?:\.\d+)*)", out)
    return match.group(1) if match else out.strip()


def major(version: str) -> int:
    return int(version.split(".", maxsplit=1)[0])
