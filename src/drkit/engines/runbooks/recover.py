"""`drkit recover SCENARIO`: plan a scenario's runbook, run it journaled, and measure it.

Measures, per service the recovery touched: RTO from the incident (`--since`, else the
moment the recovery started; a drill: the moment the failure was injected) to the moment
the service was verified healthy; RPO from the incident back to the newest data recovered
(PostgreSQL: the target time, or the last transaction replayed when recovering to latest).
"""

from __future__ import annotations

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


def prepare(ws: Workspace, args: RecoverArgs) -> Runbook:
    """Plan and build; nothing is touched. Refuses what cannot work before any step runs."""
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
                rto_target=svc.rto.total_seconds() if svc and svc.rto else None,
                rpo_target=svc.rpo.total_seconds() if svc and svc.rpo else None,
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
