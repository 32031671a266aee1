"""`drkit switchover` and `drkit failover` for a service Patroni runs: drkit asks Patroni
(POST /switchover, POST /failover) or waits for Patroni's own election, then confirms through
Patroni's view (a new running leader, a later timeline) and with a write on the new leader.
It never stops, promotes or fences a member itself. Journaled like the direct ones (the
scenario names are the same, so engines/failover/run.py measures them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from drkit.domain.errors import OperationError, UsageError
from drkit.engines.failover import actions
from drkit.engines.failover.cluster import Cluster
from drkit.engines.failover.confirm import confirm_down
from drkit.engines.failover.patroni import PatroniMember, api, as_member, settings, view
from drkit.engines.failover.repoint import pause_writers, repoint_all, resume_writers
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepResult
from drkit.infra.wait import wait_for


def new_leader(cluster: Cluster, *, old: str, timeline: int | None, want: str | None = None) -> PatroniMember:
    """Wait until Patroni shows a running leader other than `old` (the one wanted, if any)
    on a later timeline than `timeline`."""
    p = settings(cluster)

    def probe() -> PatroniMember:
        client = api(cluster)
        try:
            leader = view(client).leader
        finally:
            client.close()
        if leader is None or leader.name == old or (want and leader.name != want):
            raise OperationError(f"Patroni's leader is {leader.name if leader else 'none'}")
        if timeline is not None and (leader.timeline or 0) <= timeline:
            raise OperationError(f"{leader.name} still on timeline {leader.timeline}")
        return leader

    what = f"Patroni to elect a leader other than {old}" + (f" ({want})" if want else "")
    return wait_for(probe, timeout=p.wait, what=what, retry_on=(OperationError,))


def _current(cluster: Cluster) -> tuple[PatroniMember | None, dict[str, PatroniMember]]:
    client = api(cluster)
    try:
        seen = view(client)
    finally:
        client.close()
    return seen.leader, {m.name: m for m in seen.members}


def current_leader(cluster: Cluster) -> PatroniMember | None:
    """Patroni's running leader now, or None."""
    return _current(cluster)[0]


def build_switchover(cluster: Cluster, target: str) -> Runbook:
    leader, members = _current(cluster)
    if leader is None:
        raise OperationError("Patroni shows no running leader: nothing to switch over from (drkit failover)")
    if target not in members:
        raise UsageError(f"Patroni has no member {target!r} (members: {', '.join(members)})")
    if target == leader.name:
        raise UsageError(f"{target} is already Patroni's leader")
    if not members[target].running:
        raise OperationError(f"{target} is {members[target].state} in Patroni's view: not a candidate")
    policy, p = cluster.replication.failover, settings(cluster)
    old, timeline = leader.name, leader.timeline

    def pause(ctx: StepContext) -> StepResult:
        return StepResult(pause_writers(ctx.ws, policy.repoint, policy.pause))

    def ask(ctx: StepContext) -> StepResult:
        client = api(cluster)
        try:
            said = client.switchover(old, target, timeout=p.wait)
        finally:
            client.close()
        new = new_leader(cluster, old=old, timeline=timeline, want=target)
        facts = {"timeline_before": timeline, "timeline_after": new.timeline}
        return StepResult(f"Patroni: {said}; timeline {timeline} -> {new.timeline}", facts)

    steps = (
        Step("pause-writers", "pause the writers (pooler / runtime)", pause, service=old),
        Step("patroni-switchover", f"ask Patroni to switch over {old} -> {target}", ask, service=target),
        *_after_switch(cluster, target, failover=False),
        Step(
            "resume-writers",
            "resume the writers",
            lambda ctx: StepResult(resume_writers(ctx.ws, policy.repoint, policy.pause)),
            service=target,
        ),
        Step(
            "verify",
            f"{old} follows {target} (Patroni's view)",
            _follows(cluster, old, target),
            service=old,
            critical=False,
        ),
    )
    return Runbook(
        "switchover",
        steps,
        parameters={"service": cluster.service.name, "from": old, "to": target, "via": "patroni"},
        targets={"from": old, "to": target, "via": "patroni", "timeline": timeline},
    )


def build_failover(cluster: Cluster, target: str | None, *, since: datetime | None = None) -> Runbook:
    """Without --to: confirm the leader is lost and that Patroni elected another by itself.
    With --to: Patroni's POST /failover {candidate} (Patroni checks the candidate's lag)."""
    leader, members = _current(cluster)
    old, timeline = _lost(cluster, leader, members)
    if target is not None and target not in members:
        raise UsageError(f"Patroni has no member {target!r} (members: {', '.join(members)})")
    if target == old:
        raise UsageError(f"{target} is the leader being failed over")
    policy, p = cluster.replication.failover, settings(cluster)
    gone = members.get(old)

    def down(ctx: StepContext) -> StepResult:
        def is_up() -> bool:
            if gone is None or not gone.api_url:
                return False
            try:
                client = api(cluster)
                try:
                    mine = client.member(gone.api_url)
                finally:
                    client.close()
            except OperationError:
                return False
            return mine.get("role") in ("master", "primary") and mine.get("state") == "running"

        first = confirm_down(
            is_up, probes=policy.probes, window=policy.window, clock=ctx.ws.clock, say=ctx.say
        )
        return StepResult(
            f"{old} not a running leader on {policy.probes} probes", {"lost_at": (since or first).isoformat()}
        )

    def elect(ctx: StepContext) -> StepResult:
        said = "Patroni elected it by itself"
        if target is not None:
            current, _ = _current(cluster)
            if current is None or current.name != target:
                client = api(cluster)
                try:
                    said = "Patroni /failover: " + client.failover(target, timeout=p.wait)
                finally:
                    client.close()
        new = new_leader(cluster, old=old, timeline=timeline, want=target)
        facts = {
            "timeline_before": timeline,
            "timeline_after": new.timeline,
            "new_leader": new.name,
            "rpo_note": "Patroni fenced and promoted (maximum_lag_on_failover bounds the loss); "
            "the old leader's last LSN is not reachable: RPO not measured",
        }
        return StepResult(f"{new.name} leads on timeline {new.timeline}; {said}", facts)

    how = f"ask Patroni to fail over to {target}" if target else "wait for Patroni to elect a new leader"
    steps = (
        Step(
            "confirm-down",
            f"confirm {old} is down ({policy.probes} probes over {policy.window:.0f}s)",
            down,
            service=old,
        ),
        Step("patroni-failover", how, elect, service=target),
        *_after_switch(cluster, target, failover=True),
    )
    return Runbook(
        "failover",
        steps,
        parameters={"service": cluster.service.name, "from": old, "to": target or "", "via": "patroni"},
        targets={"from": old, "to": target or "Patroni's choice", "via": "patroni", "timeline": timeline},
    )


def _lost(
    cluster: Cluster, leader: PatroniMember | None, members: dict[str, PatroniMember]
) -> tuple[str, int | None]:
    """The leader that was lost and its timeline. Patroni may have elected another already
    (drkit runs after its ttl): then the lost one is the leader drkit last recorded."""
    recorded = _recorded(cluster)
    if leader is not None and (recorded is None or recorded == leader.name or recorded not in members):
        return leader.name, leader.timeline
    if recorded is None:
        raise OperationError("Patroni shows no leader and drkit recorded none: which one was lost?")
    was = members.get(recorded)
    if was is not None and was.timeline is not None:
        return recorded, was.timeline if leader is None else min(was.timeline, (leader.timeline or 1) - 1)
    return recorded, (leader.timeline or 1) - 1 if leader else None


def _recorded(cluster: Cluster) -> str | None:
    """The leader drkit last recorded (Patroni's members are not in stack.yaml)."""
    try:
        data = json.loads(cluster.state_file.read_text())
    except (OSError, ValueError):
        return None
    return str(data["primary"]) if isinstance(data, dict) and data.get("primary") else None


def _after_switch(cluster: Cluster, target: str | None, *, failover: bool) -> tuple[Step, ...]:
    """The new leader accepts a write (the measured RTO ends there); clients repointed."""
    policy = cluster.replication.failover

    def leader_now(ctx: StepContext) -> PatroniMember:
        name = target or str(ctx.facts.get("new_leader", ""))
        leader, _ = _current(cluster)
        if leader is None or leader.name != name:
            raise OperationError(f"Patroni's leader is {leader.name if leader else 'none'}, not {name}")
        return leader

    def writable(ctx: StepContext) -> StepResult:
        leader = leader_now(ctx)
        at = actions.write_check(cluster, as_member(cluster, leader), ctx.ws.clock)
        cluster.record_primary(leader.name, at, "patroni " + ("failover" if failover else "switchover"))
        facts = {"writable_at": at.isoformat(), "healthy_at": at.isoformat()}
        return StepResult(f"a write committed on {leader.name} ({leader.host}:{leader.port})", facts)

    def point(ctx: StepContext) -> StepResult:
        leader = leader_now(ctx)
        said = repoint_all(ctx.ws, policy.repoint, leader.name, leader.host, leader.port, failover=failover)
        return StepResult(said if policy.repoint else "no repoint configured (clients follow Patroni)")

    who = target or "the new leader"
    return (
        Step("writable", f"a write commits on {who}", writable, service=target),
        Step("repoint", f"repoint clients to {who}", point, service=target),
    )


def _follows(cluster: Cluster, old: str, new: str) -> Callable[[StepContext], StepResult]:
    def run(ctx: StepContext) -> StepResult:
        def probe() -> PatroniMember:
            _leader, members = _current(cluster)
            m = members.get(old)
            if m is None or not m.running or m.role == "leader":
                raise OperationError(f"{old} is {m.state if m else 'absent'} in Patroni's view")
            return m

        m = wait_for(
            probe, timeout=settings(cluster).wait, what=f"{old} to follow {new}", retry_on=(OperationError,)
        )
        return StepResult(f"{old} is a {m.role} on timeline {m.timeline}, lag {m.lag_bytes} bytes")

    return run
