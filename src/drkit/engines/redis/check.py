"""`drkit check` for Redis: will its backups work, and does it keep what it is given?

Backups take a BGSAVE and check each file with redis-check-rdb / redis-check-aof, so a
failing BGSAVE or a missing checker fails here first. Like every check, these collect
results and never raise.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

from drkit.domain.checks import CheckResult, Status, guard
from drkit.domain.durations import format_duration
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.redis.files import open_server

OK, WARN, FAIL = Status.OK, Status.WARNING, Status.FAILED
CHECKERS = ("redis-check-rdb", "redis-check-aof")


def check_redis(ws: Workspace, service: Service) -> list[CheckResult]:
    n = service.name
    try:
        server = open_server(service)
        version = server.version()
    except DrkitError as exc:
        return [CheckResult(f"{n}: connect", FAIL, exc.message)]
    with server:
        results = [CheckResult(f"{n}: connect", OK, f"Redis {version} at {server.where}")]
        results += guard(
            f"{n}: persistence",
            lambda: persistence_results(
                n,
                server.info("persistence"),
                save=server.config("save").strip(),
                appendfsync=server.config("appendfsync"),
                rpo=service.rpo,
                now=ws.clock.now(),
            ),
        )
    results += [_checker(n, tool) for tool in CHECKERS]
    return results


def persistence_results(
    n: str,
    info: dict[str, Any],
    *,
    save: str,
    appendfsync: str,
    rpo: timedelta | None,
    now: datetime,
) -> list[CheckResult]:
    """What INFO persistence and the save/appendfsync settings say, as results."""
    aof = int(info.get("aof_enabled", 0)) == 1
    if not save and not aof:
        mode = CheckResult(
            f"{n}: persistence", FAIL, "neither RDB saves (`save`) nor AOF are on: a restart loses every key"
        )
    elif not aof:
        mode = CheckResult(
            f"{n}: persistence", WARN, f"RDB only (save {save}): a crash loses the writes since the last save"
        )
    else:
        mode = CheckResult(
            f"{n}: persistence", OK, f"AOF on (appendfsync {appendfsync}), RDB save {save or 'off'}"
        )
    out = [mode]
    bgsave = str(info.get("rdb_last_bgsave_status", "ok"))
    out.append(
        CheckResult(
            f"{n}: last BGSAVE",
            OK if bgsave == "ok" else FAIL,
            "succeeded"
            if bgsave == "ok"
            else f"{bgsave}: every backup (a BGSAVE) will fail; see the Redis log",
        )
    )
    if aof:
        write = str(info.get("aof_last_write_status", "ok"))
        out.append(
            CheckResult(
                f"{n}: AOF writes",
                OK if write == "ok" else FAIL,
                "succeeding" if write == "ok" else f"{write}: Redis refuses writes until the disk is fixed",
            )
        )
    changes = int(info.get("rdb_changes_since_last_save", 0))
    last = datetime.fromtimestamp(int(info.get("rdb_last_save_time", 0)), UTC)
    age = max(now - last, timedelta(0))
    if rpo is not None and changes and age > rpo and not aof:
        out.append(
            CheckResult(
                f"{n}: last save",
                WARN,
                f"{format_duration(age)} ago with {changes} changes since: more than the RPO "
                f"of {format_duration(rpo)} would be lost in a crash",
            )
        )
    else:
        out.append(CheckResult(f"{n}: last save", OK, f"{format_duration(age)} ago, {changes} changes since"))
    return out


def _checker(n: str, tool: str) -> CheckResult:
    found = shutil.which(tool)
    if found:
        return CheckResult(f"{n}: {tool}", OK, found)
    return CheckResult(
        f"{n}: {tool}", FAIL, f"{tool} is not on PATH: backups check every file with it (Debian: redis-tools)"
    )
