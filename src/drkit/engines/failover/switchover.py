"""`drkit switchover --to NAME`: planned, no acknowledged transaction lost. Before the pause,
the standby stops fetching from the archive (so its promotion looks up nothing there) and
the old primary's pg_rewind prerequisites are checked. Then: pause the writers, wait until
the standby replayed the primary's last LSN, stop the old primary cleanly, promote the
standby, repoint clients, resume the writers; only then make the old primary a standby of
the new one (no rewind needed after a clean stop). Clients are on the new primary as soon as
it is promoted, whatever follows; a failure before that starts the old primary again
(engines/failover/run.py settles it)."""

from __future__ import annotations

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import Member
from drkit.engines.failover import actions
from drkit.engines.failover.cluster import Cluster, current_primary, format_lsn, probe
from drkit.engines.failover.repoint import pause_writers, repoint_all, resume_writers
from drkit.engines.failover.rewind import REBUILD, server_prerequisites
from drkit.engines.failover.standby import shutdown_lsn
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepResult


def build(cluster: Cluster, target: str, restore_command: str | None, *, timeout: float = 120.0) -> Runbook:
    new = cluster.member(target)
    old = current_primary(cluster)
    if new.name == old.name:
        raise UsageError(
            f"{new.name} is already the primary (`drkit replica rejoin NAME` makes a former one its standby)"
        )
    p = probe(cluster, new)
    if not (p.up and p.in_recovery):
        raise OperationError(f"{new.name} is not a running standby: {p.error or 'not in recovery'}")
    policy = cluster.replication.failover

    def prepare(ctx: StepContext) -> StepResult:
        previous = actions.stop_restoring(cluster, new)
        rewind = server_prerequisites(cluster, old)
        said = (
            f"{new.name} fetches nothing from the archive now"
            if previous
            else f"{new.name} has no restore_command"
        )
        if rewind:  # a clean switchover needs no rewind; later ones may
            said += f"; note: {rewind}"
        return StepResult(said, {"restore_command": previous, "rewind_prerequisites": rewind})

    def pause(ctx: StepContext) -> StepResult:
        return StepResult(pause_writers(ctx.ws, policy.repoint, policy.pause))

    def catch_up(ctx: StepContext) -> StepResult:
        lsn = actions.current_lsn(cluster, old)
        got = actions.wait_replayed(cluster, new, lsn, timeout)
        return StepResult(
            f"{new.name} replayed {format_lsn(got)} (primary at {format_lsn(lsn)})", {"primary_lsn": lsn}
        )

    def stop_old(ctx: StepContext) -> StepResult:
        cluster.runtime(old).stop()
        end = shutdown_lsn(old) if old.runtime.type == "local" else None
        if end is not None:  # its shutdown checkpoint reaches the standby before it exits
            actions.wait_replayed(cluster, new, end, timeout)
        return StepResult(f"{old.name} stopped cleanly, WAL ended at {format_lsn(end)}", {"final_lsn": end})

    def promote(ctx: StepContext) -> StepResult:
        actions.promote(cluster, new, keep_sync={old.name})
        at = actions.write_check(cluster, new, ctx.ws.clock)
        cluster.record_primary(new.name, at, "switchover")
        return StepResult(f"{new.name} promoted, accepts writes", {"writable_at": at.isoformat()})

    def point(ctx: StepContext) -> StepResult:
        host, port = cluster.host_port(new)
        return StepResult(repoint_all(ctx.ws, policy.repoint, new.name, host, port, failover=False))

    def resume(ctx: StepContext) -> StepResult:
        return StepResult(resume_writers(ctx.ws, policy.repoint, policy.pause))

    def demote(ctx: StepContext) -> StepResult:
        try:
            return StepResult(actions.follow(cluster, old, new, restore_command))
        except OperationError as exc:
            raise OperationError(
                f"{exc.message}. {new.name} is the primary and clients use it; {old.name} stays "
                f"stopped until `drkit replica rejoin {old.name}` (or `{REBUILD.format(name=old.name)}`)"
            ) from exc

    def verify(ctx: StepContext) -> StepResult:
        actions.wait_streaming(cluster, old, new, timeout)
        return StepResult(f"{old.name} streams from {new.name}")

    steps = (
        Step(
            "prepare",
            f"{new.name} stops fetching from the archive; {old.name}'s pg_rewind prerequisites",
            prepare,
            service=new.name,
        ),
        Step("pause-writers", "pause the writers (pooler / runtime)", pause, service=old.name),
        Step("catch-up", f"wait until {new.name} replayed {old.name}'s last LSN", catch_up, service=new.name),
        Step(
            "stop-old-primary",
            f"stop {old.name} cleanly",
            stop_old,
            service=old.name,
            destructive=True,
            after=lambda _c: None if not cluster.runtime(old).is_running() else f"{old.name} still runs",
        ),
        Step("promote", f"promote {new.name} (pg_promote)", promote, service=new.name),
        Step("repoint", f"repoint clients to {new.name}", point, service=new.name),
        Step("resume-writers", "resume the writers", resume, service=new.name),
        Step("demote-old-primary", f"make {old.name} a standby of {new.name}", demote, service=old.name),
        Step("verify", f"{old.name} streams from {new.name}", verify, service=old.name, critical=False),
    )
    return Runbook(
        "switchover",
        steps,
        parameters={"service": cluster.service.name, "from": old.name, "to": new.name},
        targets={"from": _where(cluster, old), "to": _where(cluster, new)},
    )


def _where(cluster: Cluster, member: Member) -> str:
    host, port = cluster.host_port(member)
    return f"{member.name} ({host}:{port})"
