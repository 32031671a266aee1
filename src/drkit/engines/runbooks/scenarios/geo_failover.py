"""geo-failover: the source's geographic failover checklist. The primary region is lost; the
standby region takes over. Automatic steps (verify the primary is down, check the standby's
lag, fence, promote, repoint, a write commits) are engines/failover's own, provided to this
module by the caller (the layers put failover above runbooks). The manual ones (DNS, CDN,
telling users about the data-loss window, watching error rates, the status page) wait for an
operator's confirmation and record when it came; with --yes they are recorded as assumed,
never as done by drkit. Measures: RTO from the loss to the database accepting writes and,
when an operator confirmed DNS and CDN, to users being sent there; RPO as a failover's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.journal import Journal, ServiceMeasure, StepStatus
from drkit.engines.core.workspace import Workspace
from drkit.engines.runbooks.model import AssumeYes, Runbook, Step, StepContext, StepResult

SCENARIO = "geo-failover"
MANUAL_TIMEOUT = 4 * 3600.0  # an operator may take a while; the journal times it
USER_FACING = ("update-dns", "update-cdn")
Automatic = Callable[[dict[str, Any]], Runbook]  # the failover runbook for these parameters
_automatic: dict[str, Automatic] = {}


def provide(steps: Automatic) -> None:
    """The failover's steps for a service (given by engines/failover, see its geo module)."""
    _automatic["failover"] = steps


def plan(ws: Workspace, *, service: str | None = None, **_: Any) -> dict[str, Any]:
    """`service` here is the standby to promote (default: the most advanced one)."""
    replicated = [s for s in ws.stack.services_of_kind("postgres") if s.replication is not None]
    if len(replicated) != 1:
        raise UsageError(
            f"geo-failover needs exactly one replicated PostgreSQL service ({len(replicated)} configured)",
            hint="services.<name>.replication (docs/failover.md)",
        )
    return {"service": replicated[0].name, "to": service}


def build(parameters: dict[str, Any]) -> Runbook:
    automatic = _automatic.get("failover")
    if automatic is None:
        raise OperationError(
            "geo-failover's automatic steps are not available (engines/failover provides them)"
        )
    failover = automatic(parameters)
    parameters = {**parameters, "to": failover.parameters.get("to") or parameters.get("to")}
    steps = (
        *failover.steps,
        manual("update-dns", "point DNS at the standby region", _dns),
        manual("update-cdn", "update the CDN's origin to the standby region", _cdn),
        manual("notify-users", "tell users about the data-loss window", _notify),
        manual("monitor-errors", "watch error rates on the standby region", _monitor),
        manual("update-status-page", "update the status page", _status_page),
    )
    return Runbook(
        SCENARIO,
        steps,
        parameters,
        targets={
            **failover.targets,
            "service": parameters["service"],
            "manual": [s.name for s in steps[-5:]],
        },
    )


def manual(name: str, title: str, instruction: Callable[[StepContext], str]) -> Step:
    def run(ctx: StepContext) -> StepResult:
        text = instruction(ctx)
        asked = ctx.ws.clock.now()
        if isinstance(ctx.confirm, AssumeYes):
            return StepResult(
                f"NOT CONFIRMED BY AN OPERATOR: assumed by --yes at {asked.isoformat()}; still to do: {text}",
                {f"manual:{name}": {"by": "--yes", "asked_at": asked.isoformat(), "at": asked.isoformat()}},
            )
        ctx.say(f"MANUAL: {text}")
        if not ctx.confirm(f"{title}: {text}\nDone?"):
            raise OperationError(
                f"{title}: not confirmed by an operator "
                "(answer yes once done; `drkit recover --resume` asks again)"
            )
        at = ctx.ws.clock.now()
        waited = (at - asked).total_seconds()
        return StepResult(
            f"confirmed by the operator at {at.isoformat()} ({waited:.0f}s after asked): {text}",
            {f"manual:{name}": {"by": "operator", "asked_at": asked.isoformat(), "at": at.isoformat()}},
        )

    return Step(name, f"MANUAL: {title}", run, timeout=MANUAL_TIMEOUT)


def _new(ctx: StepContext) -> str:
    return str(ctx.facts.get("new_leader") or ctx.parameters.get("to") or "the new primary")


def _dns(ctx: StepContext) -> str:
    return f"point the service's DNS records at the standby region ({_new(ctx)}); mind the TTL"


def _cdn(ctx: StepContext) -> str:
    return "switch the CDN's origin to the standby region and purge what it cached from the lost one"


def _monitor(ctx: StepContext) -> str:
    return "watch the error rates and latency on the standby region until they are back to normal"


def _status_page(ctx: StepContext) -> str:
    return "post on the status page: running from the standby region, with the data-loss window"


def _notify(ctx: StepContext) -> str:
    return f"tell users that {loss_window(ctx.facts)} may be lost"


def loss_window(facts: dict[str, Any]) -> str:
    """What may be lost, from the failover's facts: between the standby's last replayed
    transaction and the primary's loss; nothing when the standby had all of the WAL."""
    lost, final, promoted = facts.get("lost_at"), facts.get("final_lsn"), facts.get("promoted_lsn")
    if final is not None and promoted is not None and int(final) <= int(promoted):
        return "nothing (the standby had all of the primary's WAL), yet transactions in flight"
    if lost and facts.get("last_replay_epoch"):
        since = datetime.fromtimestamp(float(facts["last_replay_epoch"]), UTC)
        return f"transactions committed between {since.isoformat()} and {lost} (at most the standby's lag)"
    if lost:
        return f"transactions committed shortly before {lost} (the standby's exact position is unknown)"
    return "the transactions the standby had not received (unknown window)"


def measure(ws: Workspace, journal: Journal, incident: datetime) -> tuple[ServiceMeasure, ...]:
    facts: dict[str, Any] = {}
    for record in journal.steps:
        if record.status is StepStatus.SUCCEEDED:
            facts.update(record.facts)
    if not facts.get("healthy_at"):
        return ()
    svc = ws.stack.services.get(str(journal.parameters.get("service")))
    lost = incident if journal.parameters.get("since") else _time(facts.get("lost_at")) or incident
    healthy = _time(facts["healthy_at"]) or incident
    db_rto = max(0.0, (healthy - lost).total_seconds())
    rto, detail = _user_rto(facts, lost, db_rto)
    rpo, recovered = _rpo(facts, lost)
    return (
        ServiceMeasure(
            service=svc.name if svc else str(journal.parameters.get("service")),
            rto_seconds=rto,
            rpo_seconds=rpo,
            rto_target=svc.rto.total_seconds() if svc and svc.rto else None,
            rpo_target=svc.rpo_seconds if svc else None,
            healthy_at=healthy,
            recovered_to=recovered,
            detail=detail,
        ),
    )


def _user_rto(facts: dict[str, Any], lost: datetime, db_rto: float) -> tuple[float, str]:
    marks = [facts.get(f"manual:{n}") for n in USER_FACING]
    if all(isinstance(m, dict) and m.get("by") == "operator" for m in marks):
        end = max(_time(m["at"]) or lost for m in marks if isinstance(m, dict))
        rto = max(db_rto, (end - lost).total_seconds())
        return (
            rto,
            f"database writable after {db_rto:.1f}s; users sent there (DNS, CDN confirmed) after {rto:.1f}s",
        )
    return db_rto, (
        f"database writable after {db_rto:.1f}s; DNS/CDN not confirmed by an operator (--yes): "
        "the users' RTO is not measured"
    )


def _rpo(facts: dict[str, Any], lost: datetime) -> tuple[float | None, datetime | None]:
    final, promoted = facts.get("final_lsn"), facts.get("promoted_lsn")
    if final is not None and promoted is not None and int(final) <= int(promoted):
        return 0.0, lost
    if final is not None and facts.get("last_replay_epoch"):
        recovered = datetime.fromtimestamp(float(facts["last_replay_epoch"]), UTC)
        return max(0.0, (lost - recovered).total_seconds()), recovered
    return None, None


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None
