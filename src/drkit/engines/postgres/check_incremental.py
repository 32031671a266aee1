"""`drkit check`: can `drkit backup --type incremental` take incremental backups here?

PostgreSQL 17+ needs `summarize_wal = on` (the WAL summaries tell the server which blocks
changed since the parent); below 17, drkit's own delta reads the data directory, so drkit
must run on the database host with read access to it. Either way a backup that cannot be
incremental is taken as a full one, so this is advice (a warning), not a failure.
"""

from __future__ import annotations

from drkit.adapters.postgres.server import ServerInfo
from drkit.domain.checks import CheckResult, Status
from drkit.domain.stack import Service
from drkit.engines.postgres.delta_source import data_dir_blocker, data_dir_of
from drkit.engines.postgres.incremental import NATIVE


def check_incremental(service: Service, info: ServerInfo) -> CheckResult:
    name = f"{service.name}: incremental backups"
    if info.version_num >= NATIVE:
        if info.settings.get("summarize_wal") == "on":
            return CheckResult(name, Status.OK, "summarize_wal = on: PostgreSQL's own incremental backups")
        return CheckResult(
            name,
            Status.WARNING,
            "summarize_wal = off: `backup --type incremental` takes full backups; turn it on with "
            "ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf(); then take a base backup",
            critical=False,
        )
    why = data_dir_blocker(service, info)
    if why:
        return CheckResult(
            name, Status.WARNING, f"{why}; `backup --type incremental` takes full backups", critical=False
        )
    return CheckResult(
        name,
        Status.OK,
        f"drkit's delta (PostgreSQL {info.version_num // 10000}) reads {data_dir_of(service, info)}",
    )
