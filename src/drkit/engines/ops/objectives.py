"""`drkit check`, objectives: can each service's `rpo` hold with what captures its data?

`rpo` means one thing for every service: the most data a disaster may cost it, i.e. the
oldest the newest recoverable point may be before `drkit status` turns red. What keeps that
point recent differs:
- PostgreSQL: its WAL capture. Archiving loses up to `archive_timeout` (checked against the
  server's setting in engines/postgres/check.py), streaming about a second; nothing but a
  synchronous standby comes close to 0.
- Hasura and hasura-auth keep their data in PostgreSQL: their point is PostgreSQL's, so an
  `rpo` below PostgreSQL's cannot hold (without one they inherit it).
- Every other service: its scheduled backups. An `rpo` shorter than the longest gap between
  two of them turns the status red between runs, every day.
"""

from __future__ import annotations

from datetime import timedelta

from drkit.domain.checks import CheckResult, Status, guard
from drkit.domain.durations import format_duration
from drkit.domain.stack import DATA_IN_DEPENDENCIES, Service, Stack, WalMode
from drkit.engines.core.registry import has_engine
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.schedule_jobs import backup_gap

OK, WARN = Status.OK, Status.WARNING


def _d(delta: timedelta) -> str:
    return "0s" if not delta else format_duration(delta)


def check_objectives(ws: Workspace) -> list[CheckResult]:
    """One result per service with an `rpo` (a warning never fails `check`)."""
    out: list[CheckResult] = []
    for svc in sorted(ws.stack.services.values(), key=lambda s: s.name):
        if svc.rpo is not None:
            out += guard(f"{svc.name}: rpo", lambda svc=svc: _objective(ws.stack, svc))  # type: ignore[misc]
    return out


def _objective(stack: Stack, svc: Service) -> list[CheckResult]:
    if svc.rpo is None:
        return []
    if svc.kind == "postgres":
        return [_postgres(svc, svc.rpo)]
    holders = [stack.services[d] for d in svc.depends_on if stack.services[d].kind == "postgres"]
    if svc.kind in DATA_IN_DEPENDENCIES and holders:
        return [_inherited(svc, svc.rpo, holders)]
    if has_engine(svc.kind):
        return [_scheduled(stack, svc, svc.rpo)]
    return []


def _result(svc: Service, status: Status, detail: str) -> CheckResult:
    return CheckResult(f"{svc.name}: rpo", status, detail, critical=False)


def _postgres(svc: Service, rpo: timedelta) -> CheckResult:
    stream = svc.postgres is not None and svc.postgres.wal_mode is WalMode.STREAM
    synchronous = svc.replication is not None and any(m.synchronous for m in svc.replication.members)
    floor = timedelta(seconds=1) if stream else None
    if synchronous or (floor is not None and rpo >= floor) or (floor is None and rpo > timedelta(0)):
        how = "a synchronous standby" if synchronous else ("WAL streaming" if stream else "WAL archiving")
        extra = "" if stream or synchronous else " (archive_timeout is checked against it above)"
        return _result(svc, OK, f"{_d(rpo)}, held by {how}{extra}")
    capture = "WAL streaming loses about a second" if stream else "WAL archiving loses up to archive_timeout"
    return _result(
        svc,
        WARN,
        f"rpo {_d(rpo)} is below what WAL capture can deliver: {capture}; only a "
        "synchronous standby (replication: synchronous: true) comes close to no loss, so `drkit "
        "status` stays red. Set the rpo the capture holds (e.g. 1m)",
    )


def _inherited(svc: Service, rpo: timedelta, holders: list[Service]) -> CheckResult:
    if svc.rpo_from is not None:
        return _result(svc, OK, f"{_d(rpo)}, {svc.rpo_from}'s (its data lives there; no rpo of its own)")
    floor = max((h.rpo for h in holders if h.rpo is not None), default=None)
    if floor is not None and rpo < floor:
        names = ", ".join(h.name for h in holders)
        return _result(
            svc,
            WARN,
            f"rpo {_d(rpo)} is below {names}'s {_d(floor)}: {svc.name} keeps "
            f"its data in {names}, so its newest recoverable point is {names}'s and `drkit status` "
            f"stays red. Remove its `rpo` (it then inherits {names}'s)",
        )
    return _result(svc, OK, f"{_d(rpo)} (its data lives in {', '.join(h.name for h in holders)})")


def _scheduled(stack: Stack, svc: Service, rpo: timedelta) -> CheckResult:
    gap = backup_gap(stack, svc.name)
    if gap is None:
        return _result(
            svc,
            WARN,
            f"rpo {_d(rpo)}, but no scheduled job backs {svc.name} up: its newest "
            "recoverable point moves only when someone runs `drkit backup`",
        )
    if gap > rpo:
        return _result(
            svc,
            WARN,
            f"rpo {_d(rpo)} is shorter than the {_d(gap)} between two "
            f"scheduled backups of {svc.name}: `drkit status` turns red between them. Back it up more "
            f"often (a `schedule:` job with services: [{svc.name}]) or raise its rpo",
        )
    return _result(svc, OK, f"{_d(rpo)}; the schedule backs it up at least every {_d(gap)}")
