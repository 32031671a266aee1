"""`drkit failover [--to NAME] [--force]`: the primary is lost. Confirm it (several probes
over a window), check the candidate's lag against the RPO target, fence the old primary,
promote the candidate (pg_promote), repoint clients, and prove it accepts writes."""

from __future__ import annotations

from datetime import datetime

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import Member
from drkit.engines.failover import actions
from drkit.engines.failover.cluster import Cluster, Probe, current_primary, format_lsn, probe
from drkit.engines.failover.confirm import candidate_lag, check_lag, confirm_down
from drkit.engines.failover.repoint import repoint
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepResult


def choose(cluster: Cluster, old: Member, target: str | None, seen: dict[str, Probe]) -> Member:
    if target:
        new = cluster.member(target)
        if new.name == old.name:
            raise UsageError(f"{new.name} is the primary being failed over")
        return new
    up = [m for m in cluster.replication.members if m.name != old.name and seen[m.name].up]
    if not up:
        raise OperationError("no standby answers: nothing to fail over to")
    return max(up, key=lambda m: seen[m.name].lsn or 0)


def build(cluster: Cluster, target: str | None, *, force: bool, since: datetime | None = None) -> Runbook:
    policy = cluster.replication.failover
    seen = {m.name: probe(cluster, m, policy.probe_timeout) for m in cluster.replication.members}
    old = current_primary(cluster, seen)
    new = choose(cluster, old, target, seen)
    rpo = cluster.service.rpo_seconds
    max_lag = policy.max_lag if policy.max_lag is not None else rpo

    def down(ctx: StepContext) -> StepResult:
        first = confirm_down(
            lambda: probe(cluster, old, policy.probe_timeout).up,
            probes=policy.probes,
            window=policy.window,
            clock=ctx.ws.clock,
            say=ctx.say,
        )
        lost = since or first
        return StepResult(f"{old.name} down on {policy.probes} probes", {"lost_at": lost.isoformat()})

    def check(ctx: StepContext) -> StepResult:
        lag = candidate_lag(cluster.dsn(new))
        said = check_lag(lag, max_lag, force=force)
        facts = {
            "received": lag.received,
            "replayed": lag.replayed,
            "lag_seconds": lag.seconds,
            "last_replay_epoch": lag.last_replay_epoch,
        }
        return StepResult(f"{new.name}: {said}", facts)

    def fence(ctx: StepContext) -> StepResult:
        if policy.fencing == "none":
            if not force:
                raise OperationError("fencing is off (failover.fencing: none): refusing without --force")
            return StepResult("not fenced (fencing: none, forced)")
        try:
            said, end = actions.fence(cluster, old, policy.probe_timeout * 2 + 3)
        except Exception as exc:  # any failure to fence: refuse unless forced
            if not force:
                raise OperationError(
                    f"{old.name} can be neither reached nor fenced ({exc}): refusing without --force"
                ) from exc
            return StepResult(f"not fenced ({exc}), forced")
        return StepResult(f"{old.name} {said}", {"final_lsn": end})

    def promote(ctx: StepContext) -> StepResult:
        before = probe(cluster, new).lsn
        actions.promote(cluster, new, keep_sync=set())
        at = actions.write_check(cluster, new, ctx.ws.clock)
        cluster.record_primary(new.name, at, "failover")
        return StepResult(
            f"{new.name} promoted at {format_lsn(before)}, accepts writes",
            {"promoted_lsn": before, "writable_at": at.isoformat()},
        )

    def point(ctx: StepContext) -> StepResult:
        host, port = cluster.host_port(new)
        said = [
            repoint(ctx.ws, r, name=new.name, host=host, port=port, failover=True) for r in policy.repoint
        ]
        return StepResult("; ".join(said) or "no repoint configured")

    def verify(ctx: StepContext) -> StepResult:
        at = actions.write_check(cluster, new, ctx.ws.clock)
        return StepResult(f"a write committed on {new.name}", {"healthy_at": at.isoformat()})

    steps = (
        Step(
            "confirm-down",
            f"confirm {old.name} is down ({policy.probes} probes over {policy.window:.0f}s)",
            down,
            service=old.name,
        ),
        Step(
            "check-candidate", f"check {new.name}'s lag (at most {_secs(max_lag)})", check, service=new.name
        ),
        Step("fence", f"fence {old.name} (stop it through its runtime)", fence, service=old.name),
        Step("promote", f"promote {new.name} (pg_promote)", promote, service=new.name),
        Step("repoint", f"repoint clients to {new.name}", point, service=new.name),
        Step("verify", f"a write commits on {new.name}", verify, service=new.name),
    )
    return Runbook(
        "failover",
        steps,
        parameters={"service": cluster.service.name, "from": old.name, "to": new.name, "force": force},
        targets={"from": old.name, "to": new.name, "max_lag": _secs(max_lag)},
    )


def _secs(value: float | None) -> str:
    return "no limit" if value is None else f"{value:.0f}s"
