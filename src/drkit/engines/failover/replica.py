"""`drkit replica init NAME` and `drkit replica rejoin NAME`."""

from __future__ import annotations

from drkit.domain.errors import OperationError, UsageError
from drkit.engines.failover import actions, standby
from drkit.engines.failover.cluster import Cluster, current_primary, probe, sync_names
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


def rejoin(
    cluster: Cluster, name: str, restore_command: str | None, *, force: bool, rebuild: bool = False, say: Say
) -> str:
    """A former primary (or any member) follows the current primary: pg_rewind when its
    history diverged (nothing after a clean switchover), standby settings, start. `rebuild`:
    a fresh copy instead (pg_basebackup; its data directory moved aside, never deleted), for
    a member pg_rewind cannot rewind."""
    member = cluster.member(name)
    primary = current_primary(cluster)
    if member.name == primary.name:
        raise UsageError(f"{name} is the primary; it cannot rejoin itself")
    runtime = cluster.runtime(member)
    if runtime.is_running() and not force:
        p = probe(cluster, member)
        if p.up and p.in_recovery is False:
            raise OperationError(f"{name} is running as a primary: pass --force to stop and rewind it")
    if rebuild:
        say(f"{name}: stop, move its data directory aside, pg_basebackup from {primary.name}")
        if runtime.is_running():
            runtime.stop()
        standby.basebackup(cluster, member, primary, replace_existing=True)
        standby.write_standby_settings(cluster, member, primary, restore_command)
        runtime.start()
        said = f"rebuilt from {primary.name} (the old data directory kept beside it)"
    else:
        say(f"{name}: stop, pg_rewind from {primary.name} when needed, standby")
        if runtime.is_running():
            runtime.stop()
        if not (standby.data_dir(member) / "global" / "pg_control").exists():
            raise OperationError(
                f"{name} has no data directory to rewind: "
                f"`drkit replica rejoin {name} --rebuild` copies it afresh"
            )
        said = actions.follow(cluster, member, primary, restore_command)
    state = actions.wait_streaming(cluster, member, primary, timeout=120)
    return f"{name}: {said} ({state})"
