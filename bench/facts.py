"""Facts the benchmark records: the machine, the cluster and its tables, and the phases of a
restore read from the restored server's log."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.common import MIB

# --------------------------------------------------------------------------------------------
# The machine and the cluster
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    return next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor(),
    )


def _memory_bytes() -> int | None:
    found = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    return int(found.group(1)) * 1024 if found else None


def _postgres_facts(dsn: str) -> tuple[str, dict[str, str]]:
    """The server's version() and the settings that shape the figures."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select version()").fetchone()
        settings: dict[str, str] = dict(
            conn.execute(
                "select name, setting || coalesce(unit, '') from pg_settings where name in "
                "('shared_buffers', 'data_checksums', 'wal_segment_size', 'max_wal_size', "
                "'archive_mode', 'archive_command')"
            ).fetchall()
        )
    return (str(row[0]) if row else "unknown"), settings


def _tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        return ""


def machine_info(dsn: str) -> dict[str, Any]:
    import zstandard

    from drkit import __version__

    model, memory = _cpu_model(), _memory_bytes()
    version, settings = _postgres_facts(dsn)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_bytes": memory,
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": version,
        "postgresql_settings": settings,
        "pgbackrest": _tool_version(["pgbackrest", "version"]),
        "zstd_cli": _tool_version(["zstd", "--version"]),
        "python_zstandard": zstandard.__version__,
        "drkit": __version__,
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def table_sizes(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select pg_database_size(current_database()), "
            "(select sum(pg_database_size(datname)) from pg_database)"
        ).fetchone()
        rows = conn.execute(
            "select n.nspname || '.' || c.relname, pg_total_relation_size(c.oid), c.reltuples "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind = 'r' and n.nspname in ('public', 'auth') order by 2 desc"
        ).fetchall()
    return {
        "database_bytes": int(row[0]) if row else 0,
        "cluster_bytes": int(row[1]) if row else 0,
        "tables": {str(r[0]): {"bytes": int(r[1]), "rows": int(r[2])} for r in rows},
    }


def wal_segment_size(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select setting::bigint from pg_settings where name = 'wal_segment_size'"
        ).fetchone()
    return int(row[0]) if row else 16 * MIB


# --------------------------------------------------------------------------------------------
# The restore log: where a restore's time goes
# --------------------------------------------------------------------------------------------

LOG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) (\S+) \[\d+\] (.*)$")
EVENTS = {
    "starting PostgreSQL": "server_start",
    "redo starts at": "redo_start",
    "consistent recovery state reached": "consistent",
    "redo done at": "redo_done",
    "archive recovery complete": "recovery_complete",
    "database system is ready to accept connections": "ready",
    "received fast shutdown request": "shutdown_request",
    "database system is shut down": "shut_down",
}


def _epoch(stamp: str, zone: str) -> float:
    parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
    if zone in ("UTC", "GMT", "Etc/UTC"):
        return parsed.replace(tzinfo=UTC).timestamp()
    return parsed.timestamp()  # the server's log_timezone is the machine's, as initdb chose


def _first_readable(log_files: list[Path]) -> list[str]:
    for candidate in log_files:
        try:
            return candidate.read_text(errors="replace").splitlines()
        except OSError:
            continue
    return []


def _events(lines: list[str]) -> tuple[dict[str, float], int]:
    """When each of EVENTS first happened (`ready`: the last time, after promotion), and how
    many WAL files restore_command delivered."""
    seen: dict[str, float] = {}
    fetched = 0
    for line in lines:
        m = LOG_LINE.match(line)
        if not m:
            continue
        at, message = _epoch(m.group(1), m.group(2)), m.group(3)
        if "restored log file" in message:
            fetched += 1
        for needle, name in EVENTS.items():
            if needle in message:
                seen.setdefault(name, at)
                if name == "ready":
                    seen["ready"] = at  # the last one: after promotion
    return seen, fetched


def restore_phases(log_files: list[Path], started_at: float, finished_at: float) -> dict[str, Any]:
    """Phases of a restore from its server log (timestamps to the millisecond)."""
    lines = _first_readable(log_files)
    seen, fetched = _events(lines)
    out: dict[str, Any] = {"log_lines": len(lines), "wal_files_restored": fetched}
    start = seen.get("server_start")
    if start is None:
        return out
    out["before_server_start_s"] = start - started_at  # CLI start, plan, extraction, config
    if "ready" in seen:
        out["server_start_to_promoted_s"] = seen["ready"] - start  # startup, replay, promotion
        out["until_promoted_s"] = seen["ready"] - started_at
        out["after_promoted_s"] = finished_at - seen["ready"]  # noticing it, then the stop
    if "redo_start" in seen and "redo_done" in seen:
        out["redo_s"] = seen["redo_done"] - seen["redo_start"]
    if "shutdown_request" in seen and "shut_down" in seen:
        out["shutdown_s"] = seen["shut_down"] - seen["shutdown_request"]
    return out
