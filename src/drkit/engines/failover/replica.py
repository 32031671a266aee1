"""`drkit replica init NAME` and `drkit replica rejoin NAME`."""

from __future__ import annotations

from drkit.domain.errors import OperationError, UsageError
from drkit.engines.failover import actions, standby
from drkit.engines.failover.cluster import Cluster, current_primary, sync_names
from drkit.engines.runbooks.model import Say


def init(cluster: Cluster, name: str, restore_command: str | None, *, replace: bool, say: Say) -> str:
    member = cluster.member(name)
    primary = current_primary(cluster)
    if member.name == primary.name:
        raise UsageError(f"{name} is the primary")
    standby.ensure_replication_role(cluster, primary)
    say(f"pg_basebackup from {primary.name} into {standby.data_dir(member)} (slot {member.slot})")
    standby.basebackup(cluster, member, primary, replace_existing=replace)
    standby.write_standby_settings(cluster, member, primary, restore_command)
    cluster.runtime(member).start()
    state = actions.wait_streaming(cluster, member, primary, timeout=120)
    names = sync_names(cluster, primary.name)
    if names:
        actions.set_sync(cluster, primary, names)
    sync = f"; synchronous_standby_names = {names!r}" if names else ""
    return f"{name} is a standby of {primary.name} ({state}, slot {member.slot}){sync}"


def rejoin(cluster: Cluster, name: str, restore_command: str | None, *, force: bool, say: Say) -> str:
    """A former primary (or any member) follows the current primary: pg_rewind, standby."""
    member = cluster.member(name)
    primary = current_primary(cluster)
    if member.name == primary.name:
        raise UsageError(f"{name} is the primary; it cannot rejoin itself")
    runtime = cluster.runtime(member)
    if runtime.is_running() and not force:
        from drkit.engines.failover.cluster import probe

        p = probe(cluster, member)
        if p.up and p.in_recovery is False:
            raise OperationError(f"{name} is running as a primary: pass --force to stop and rewind it")
    say(f"{name}: stop, pg_rewind from {primary.name}, standby")
    if runtime.is_running():
        runtime.stop()
    if not (standby.data_dir(member) / "global" / "pg_control").exists():
        raise OperationError(f"{name} has no data directory to rewind: use `drkit replica init {name}`")
    said = actions.follow(cluster, member, primary, restore_command)
    state = actions.wait_streaming(cluster, member, primary, timeout=120)
    return f"{name}: {said} ({state})"
