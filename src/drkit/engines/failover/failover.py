"""`drkit failover [--to NAME] [--force]`: the primary is lost. Confirm it (several probes
over a window, looking at the standbys' WAL receivers each time), check how far the
candidate is behind the primary's last known position (refused beyond `max_lag`), fence the
old primary (verified, lasting), promote the candidate (pg_promote), repoint clients, prove
it accepts writes, then measure what was lost (engines/failover/loss.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import Member
from drkit.engines.failover import actions, loss
from drkit.engines.failover.cluster import Cluster, Probe, current_primary, format_lsn, probe
from drkit.engines.failover.confirm import confirm_down
from drkit.engines.failover.fence import fence as fence_member
from drkit.engines.failover.positions import (
    StandbyView,
    heard_after,
    known_positions,
    latency,
    looks,
    old_wal,
)
from drkit.engines.failover.repoint import repoint_all
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepFailed, StepResult
from drkit.infra.clock import Clock, SystemClock


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


class Evidence:
    """What the failover learns about the old primary's position while it runs."""

    def __init__(self, cluster: Cluster, old: Member, seen: dict[str, Probe], at: datetime) -> None:
        self.cluster, self.old = cluster, old
        self.standbys = [m.name for m in cluster.replication.members if m.name != old.name]
        self.timeout = cluster.replication.failover.probe_timeout
        self.views: list[StandbyView] = looks(cluster, self.standbys, self.timeout)
        self.positions: list[loss.Position] = []
        answered = seen.get(old.name)
        if answered is not None and answered.up and answered.in_recovery is False and answered.lsn:
            source = "the old primary's WAL position when it last answered a probe"
            self.positions.append(loss.Position(answered.lsn, at, source))

    def look(self) -> list[StandbyView]:
        fresh = looks(self.cluster, self.standbys, self.timeout)
        self.views += fresh
        return fresh

    def known(self, besides: str = "") -> list[loss.Position]:
        """Every position seen, but what `besides` itself received."""
        return self.positions + known_positions([v for v in self.views if v.member != besides], self.views)

    def facts(self) -> dict[str, Any]:
        unique = {(p.lsn, p.source): p for p in self.known()}  # the newest look of each kind
        return {"positions": [p.to_dict() for p in unique.values()]}


def build(
    cluster: Cluster,
    target: str | None,
    *,
    force: bool,
    since: datetime | None = None,
    clock: Clock | None = None,
) -> Runbook:
    policy = cluster.replication.failover
    clock = clock or SystemClock()
    looked = (clock.now(), clock.monotonic())
    seen = {m.name: probe(cluster, m, policy.probe_timeout) for m in cluster.replication.members}
    old = current_primary(cluster, seen)
    # that look at the old primary, failed, is the confirmation's first probe
    failed = looked if not seen[old.name].up else None
    new = choose(cluster, old, target, seen)
    rpo = cluster.service.rpo_seconds
    max_lag = policy.max_lag if policy.max_lag is not None else rpo
    evidence = Evidence(cluster, old, seen, looked[0])

    def down(ctx: StepContext) -> StepResult:
        def is_up() -> bool:  # the standbys looked at while the primary is probed
            with ThreadPoolExecutor(1) as pool:
                looking = pool.submit(evidence.look)
                up = probe(cluster, old, policy.probe_timeout).up
                looking.result()
            return up

        first = confirm_down(
            is_up, probes=policy.probes, window=policy.window, clock=ctx.ws.clock, say=ctx.say, failed=failed
        )
        lost = since or first
        facts = {"lost_at": lost.isoformat(), "first_failed_probe": first.isoformat(), **evidence.facts()}
        return StepResult(f"{old.name} down on {policy.probes} probes", facts)

    def check(ctx: StepContext) -> StepResult:
        return _check(cluster, old, new, evidence, max_lag, force)

    def fence(ctx: StepContext) -> StepResult:
        return _fence(ctx, cluster, old, new, evidence, force)

    def promote(ctx: StepContext) -> StepResult:
        return _promote(ctx, cluster, new)

    def point(ctx: StepContext) -> StepResult:
        host, port = cluster.host_port(new)
        return StepResult(repoint_all(ctx.ws, policy.repoint, new.name, host, port, failover=True))

    def verify(ctx: StepContext) -> StepResult:
        at = actions.write_check(cluster, new, ctx.ws.clock)
        return StepResult(f"a write committed on {new.name}", {"healthy_at": at.isoformat()})

    def measure(ctx: StepContext) -> StepResult:
        found = measure_loss(old, ctx.facts)
        return StepResult(found.sentence(), {"loss": found.to_dict()})

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
        Step("fence", f"fence {old.name} (stop it for good, verified)", fence, service=old.name),
        Step("promote", f"promote {new.name} (pg_promote)", promote, service=new.name),
        Step("repoint", f"repoint clients to {new.name}", point, service=new.name),
        Step("verify", f"a write commits on {new.name}", verify, service=new.name),
        Step(
            "measure-loss",
            f"what {new.name} lacks of {old.name}'s WAL",
            measure,
            service=new.name,
            critical=False,
        ),
    )
    return Runbook(
        "failover",
        steps,
        parameters={"service": cluster.service.name, "from": old.name, "to": new.name, "force": force},
        targets={"from": old.name, "to": new.name, "max_lag": _secs(max_lag)},
    )


def _promote(ctx: StepContext, cluster: Cluster, new: Member) -> StepResult:
    """pg_promote(); where the new timeline forked and the newest commit it kept (the RPO is
    measured from them); a write commits."""
    before = probe(cluster, new).lsn
    actions.promote(cluster, new, keep_sync=set())
    fork, kept = actions.recovery_end(cluster, new)
    at = actions.write_check(cluster, new, ctx.ws.clock)
    cluster.record_primary(new.name, at, "failover")
    facts = {
        "promoted_lsn": before,
        "switchpoint": fork,
        "kept_until": kept.isoformat() if kept else None,
        "writable_at": at.isoformat(),
    }
    return StepResult(f"{new.name} promoted at {format_lsn(fork or before)}, accepts writes", facts)


def _check(
    cluster: Cluster, old: Member, new: Member, evidence: Evidence, max_lag: float | None, force: bool
) -> StepResult:
    """The candidate's lag behind the old primary's last known position; refused beyond
    `max_lag` (or unknown) without --force."""
    fresh = {v.member: v for v in evidence.look()}
    view = fresh.get(new.name)
    if view is None:
        raise OperationError(f"{new.name} does not answer as a standby: it cannot be promoted")
    candidate = view.candidate
    if candidate.latency is None:  # its receiver gave up since: as it was while it streamed
        candidate = replace(candidate, latency=latency(evidence.views, new.name))
    start = candidate.replayed or candidate.received
    tail, why_not = old_wal(old, start) if start is not None else (None, "no WAL position on the candidate")
    found = loss.lag(candidate, evidence.known(besides=new.name), tail)
    facts = {
        "received": format_lsn(view.candidate.received),
        "replayed": format_lsn(view.candidate.replayed),
        "lag_bytes": found.bytes,
        "lag_seconds": found.seconds,
        "lag_commits": found.commits,
        "lag_source": found.source,
        "transfer_latency": candidate.latency,
        "old_wal_unread": why_not,
        **evidence.facts(),
    }
    said = f"{new.name}: received {format_lsn(view.candidate.received)}, {found.sentence()}"
    reason = loss.refuse_reason(found, max_lag)
    if reason is None:
        return StepResult(said, facts)
    if force:
        return StepResult(f"{said}: {reason}; forced", facts)
    raise StepFailed(f"{reason}: refusing (--force promotes it anyway)", facts)


def _fence(
    ctx: StepContext, cluster: Cluster, old: Member, new: Member, evidence: Evidence, force: bool
) -> StepResult:
    """Fence the old primary (refused without --force when that fails or is not verified);
    the candidate stops fetching from the archive first, so that has applied by pg_promote."""
    restore = actions.stop_restoring(cluster, new)
    try:
        return _fence_old(ctx, cluster, old, evidence, force)
    except Exception:
        actions.resume_restoring(cluster, new, restore)
        raise


def _fence_old(
    ctx: StepContext, cluster: Cluster, old: Member, evidence: Evidence, force: bool
) -> StepResult:
    policy = cluster.replication.failover
    if policy.fencing == "none":
        if not force:
            raise OperationError("fencing is off (failover.fencing: none): refusing without --force")
        return StepResult("not fenced (fencing: none, forced)")
    lost = str(ctx.facts.get("first_failed_probe") or ctx.facts.get("lost_at") or "")
    reaching = heard_after(evidence.look(), datetime.fromisoformat(lost)) if lost else []
    try:
        done = fence_member(
            cluster, old, timeout=policy.probe_timeout * 2 + 3, immediate=not reaching, clock=ctx.ws.clock
        )
    except Exception as exc:  # any failure to fence: refuse unless forced
        if not force:
            raise OperationError(
                f"{old.name} can be neither reached nor fenced ({exc}): refusing without --force"
            ) from exc
        return StepResult(f"not fenced ({exc}), forced")
    why = f"{', '.join(reaching)} still heard it: a clean stop first" if reaching else "no standby reaches it"
    if not done.verified:
        if not force:
            raise OperationError(
                f"the fence of {old.name} is not verified ({done.why_not}): refusing without --force"
            )
        return StepResult(f"{old.name} {done.said}; NOT verified ({done.why_not}), forced", done.facts())
    return StepResult(f"{old.name} {done.said} ({why}); verified: process gone, port closed", done.facts())


def measure_loss(old: Member, facts: dict[str, Any], *, read_wal: bool = True) -> loss.LossBound:
    """The RPO bound from what the steps recorded, reading the old primary's WAL after the
    fork when its data directory is on this host (and `read_wal`)."""
    fork = facts.get("switchpoint")
    kept = datetime.fromisoformat(facts["kept_until"]) if facts.get("kept_until") else None
    fenced = facts.get("fenced_at") if facts.get("fence_verified") else None
    if fork is None:
        return loss.LossBound(None, False, "where the new timeline forked is unknown")
    tail = old_wal(old, int(fork))[0] if read_wal else None
    return loss.bound(
        int(fork),
        kept,
        tail=tail,
        shutdown_redo=int(facts["shutdown_redo"]) if facts.get("shutdown_redo") is not None else None,
        fenced_at=datetime.fromisoformat(fenced) if fenced else None,
    )


def _secs(value: float | None) -> str:
    return "no limit" if value is None else f"{value:.0f}s"
