"""`drkit recover SCENARIO`: plan a scenario's runbook, run it journaled, and measure it.

Measures, per service the recovery touched: RTO from the incident (`--since`, else the
moment the recovery started; a drill: the moment the failure was injected) to the moment
the service was verified healthy; RPO from the incident back to the newest data recovered
(PostgreSQL: the target time, or the last transaction replayed when recovering to latest).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from types import ModuleType
from typing import Any

from drkit.domain.errors import NotFoundError, UsageError
from drkit.domain.journal import Journal, RunKind, ServiceMeasure, StepRecord, StepStatus, Verdict, verdict_of
from drkit.domain.recovery import parse_target_time
from drkit.engines.core import journals
from drkit.engines.core.workspace import Workspace
from drkit.engines.runbooks.model import Runbook
from drkit.engines.runbooks.run import save
from drkit.engines.runbooks.scenarios import data_loss, db_corruption, full_outage, geo_failover, service

SCENARIOS: dict[str, ModuleType] = {
    "db-corruption": db_corruption,
    "full-outage": full_outage,
    "data-loss": data_loss,
    "service": service,
    "geo-failover": geo_failover,
}
RESTORE_STEPS = ("restore", "pitr-scratch")


@dataclass(frozen=True)
class RecoverArgs:
    scenario: str
    drkit_argv: tuple[str, ...]
    target_time: str | None = None
    in_place: bool = False
    copy_back: tuple[str, ...] = ()
    service: str | None = None
    force_restore: bool = False  # service NAME: restore its newest backup even when it answers
    since: str | None = None  # when the incident began (default: when the recovery starts)
    switch_wal: bool = False  # --yes: a time target past the archive closes the primary's WAL segment
    emergency_dump: bool = True  # db-corruption: take the emergency logical dump first


def prepare(ws: Workspace, args: RecoverArgs, *, say: Callable[[str], None] | None = None) -> Runbook:
    """Plan and build; nothing is touched (but with `switch_wal`, the primary's current WAL
    segment may be closed and archived, which loses nothing). Refuses what cannot work before
    any step runs."""
    module = SCENARIOS.get(args.scenario)
    if module is None:
        raise UsageError(f"no scenario {args.scenario!r} (known: {', '.join(SCENARIOS)})")
    if args.since:
        parse_target_time(args.since)
    parameters: dict[str, Any] = module.plan(
        ws,
        drkit_argv=list(args.drkit_argv),
        target_time=args.target_time,
        in_place=args.in_place,
        copy_back=args.copy_back,
        service=args.service,
        force_restore=args.force_restore,
        switch_wal=args.switch_wal,
        emergency_dump=args.emergency_dump,
        say=say,
    )
    parameters = {**parameters, "scenario": args.scenario, "since": args.since}
    runbook: Runbook = module.build(parameters)
    return runbook


def rebuild(journal: Journal) -> Runbook:
    """The runbook of a journal, from the parameters it recorded (for --resume)."""
    parameters = {k: v for k, v in journal.parameters.items() if k != "targets"}
    module = SCENARIOS.get(str(parameters.get("scenario")))
    if module is None:
        raise UsageError(f"journal {journal.run_id} is not a recovery drkit can resume")
    runbook: Runbook = module.build(parameters)
    return runbook


def latest_resumable(ws: Workspace, run_id: str | None) -> Journal:
    if run_id:
        journal = journals.load(ws, run_id)
        if not journal.resumable:
            raise UsageError(f"recovery {run_id} finished ({journal.verdict.value}); nothing to resume")
        return journal
    found, _damaged = journals.list_journals(ws)
    candidates = [j for j in found if j.kind is RunKind.RECOVERY and j.resumable]
    if not candidates:
        raise NotFoundError("no interrupted recovery to resume", hint="drkit recover SCENARIO starts one")
    return candidates[-1]


def finish(ws: Workspace, journal: Journal, *, incident: datetime | None = None) -> Journal:
    """Add the measures and the verdict; save."""
    since = journal.parameters.get("since")
    # From the incident: given, or the failure a drill injected (a drill resumed with
    # `recover --resume` keeps it), or when the recovery first started (not the resume).
    start = incident or (parse_target_time(str(since)) if since else journal.failure_at or journal.started_at)
    module = SCENARIOS.get(str(journal.parameters.get("scenario")))
    custom = getattr(module, "measure", None)  # a scenario that measures itself (geo-failover)
    measures: tuple[ServiceMeasure, ...] = (custom or measure)(ws, journal, start)
    verdict = journal.verdict if journal.verdict is Verdict.FAILED else verdict_of(measures)
    return save(
        ws,
        replace(
            journal, measures=measures, verdict=verdict, finished_at=journal.finished_at or ws.clock.now()
        ),
    )


def measure(ws: Workspace, journal: Journal, incident: datetime) -> tuple[ServiceMeasure, ...]:
    params = journal.parameters
    healthy: dict[str, datetime] = {}
    recovered: dict[str, datetime] = {}
    pg = params.get("service") if params.get("scenario") in ("db-corruption", "data-loss") else None
    for record in journal.steps:
        if record.status is not StepStatus.SUCCEEDED or record.finished_at is None:
            continue
        if pg and record.name in RESTORE_STEPS:
            # A restore found complete on --resume reports when it was healthy (its ledger).
            at = record.facts.get("postgres_healthy_at")
            healthy[str(pg)] = datetime.fromisoformat(str(at)) if at else record.finished_at
            reached = _recovered_to(params, record)
            if reached is not None:
                recovered[str(pg)] = reached
        elif record.name.startswith(("start", "resume")):
            for name in _names(params):
                healthy.setdefault(name, record.finished_at)
        elif record.name == "verify" and record.service:
            healthy[record.service] = record.finished_at
        if record.name == "restore" and record.service and record.facts.get("restored_backup_at"):
            recovered[record.service] = datetime.fromisoformat(str(record.facts["restored_backup_at"]))
    out = []
    for name, at in healthy.items():
        svc = ws.stack.services.get(name)
        reached = recovered.get(name)
        out.append(
            ServiceMeasure(
                service=name,
                rto_seconds=max(0.0, (at - incident).total_seconds()),
                rpo_seconds=max(0.0, (incident - reached).total_seconds()) if reached else None,
                rto_target=svc.rto_seconds if svc else None,
                rpo_target=svc.rpo_seconds if svc else None,
                healthy_at=at,
                recovered_to=reached,
            )
        )
    return tuple(out)


def _recovered_to(params: dict[str, Any], record: StepRecord) -> datetime | None:
    if params.get("target_time"):
        return parse_target_time(str(params["target_time"]))
    # Recovering to latest: the last transaction replayed; when none was (nothing committed
    # since the backup), the backup's own end, which is then what was lost at most.
    reached = record.facts.get("reached_time") or params.get("backup_finished_at")
    return datetime.fromisoformat(str(reached)) if reached else None


def _names(params: dict[str, Any]) -> list[str]:
    return [str(n) for n in params.get("writers", params.get("services", []))]


@dataclass(frozen=True)
class TimeShare:
    step: str
    seconds: float | None  # None: skipped
    share: float  # of the time from the first step's start to the last step's end
    note: str = ""


def rto_breakdown(journal: Journal) -> list[TimeShare]:
    """Where a recovery's time went, step by step (the emergency dump shows what it cost,
    or that it was skipped with --no-emergency-dump)."""
    timed = [r for r in journal.steps if r.started_at is not None and r.finished_at is not None]
    if not timed:
        return []
    first = min(r.started_at for r in timed if r.started_at is not None)
    last = max(r.finished_at for r in timed if r.finished_at is not None)
    total = max((last - first).total_seconds(), 1e-9)
    out = [TimeShare(r.name, r.seconds, (r.seconds or 0.0) / total) for r in timed]
    if journal.parameters.get("emergency_dump") is False:
        out.insert(0, TimeShare("emergency-dump", None, 0.0, "skipped (--no-emergency-dump)"))
    return out
