"""`drkit check`: every check of the stack, collected (one failing never hides the others)."""

from __future__ import annotations

from drkit.domain.checks import CheckResult, Status, guard
from drkit.engines.core.clocks import check_backup_times, check_repository_clock
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.check import check_postgres, check_repository
from drkit.engines.redis.check import check_redis
from drkit.engines.stack.asides import KeptData, moved_aside


def run_checks(ws: Workspace, *, kept: list[KeptData] | None = None) -> list[CheckResult]:
    """Every check; `kept`, when given, receives the moved-aside data found (for JSON)."""
    results = [CheckResult("config", Status.OK, f"{ws.stack.source_path} is valid")]
    results += check_repository(ws)
    results += guard("repository clock", lambda: check_repository_clock(ws))
    results += guard("backup times", lambda: check_backup_times(ws))
    for service in ws.stack.services_of_kind("postgres"):
        results += check_postgres(ws, service)
    for service in ws.stack.services_of_kind("redis"):
        results += check_redis(ws, service)
    found, flagged = moved_aside(ws)
    if kept is not None:
        kept.extend(found)
    return results + flagged
