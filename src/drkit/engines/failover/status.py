"""`drkit replica status`: each member's role, slot, lag (bytes and seconds), sync state."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from drkit.adapters.postgres.client import rows
from drkit.domain.errors import DrkitError, OperationError
from drkit.domain.stack import Member
from drkit.engines.failover.cluster import Cluster, Probe, current_primary, probe

REPLICATION_SQL = """
select r.application_name, r.state, r.sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint,
       coalesce(extract(epoch from r.replay_lag), 0)::float
from pg_stat_replication r
"""
SLOTS_SQL = "select slot_name, active from pg_replication_slots where slot_type = 'physical'"
STANDBY_SQL = """
select pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
       extract(epoch from now() - pg_last_xact_replay_timestamp())::float,
       pg_is_wal_replay_paused(),
       (select status from pg_stat_wal_receiver)
"""


@dataclass(frozen=True)
class MemberStatus:
    name: str
    role: str  # primary | standby | down
    slot: str
    slot_active: bool | None = None
    state: str = ""  # streaming, catchup, ... (as the primary sees it)
    sync_state: str = ""  # sync, async, potential, quorum
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    replay_paused: bool | None = None
    last_replay_age: float | None = None  # seconds since the last transaction replayed
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def replica_status(cluster: Cluster) -> tuple[str, list[MemberStatus], list[str]]:
    """The primary's name, each member's status, and warnings (several members answering as
    primary: a split brain, which `drkit replica status` reports with exit 3)."""
    probes = {m.name: probe(cluster, m) for m in cluster.replication.members}
    primaries = sorted(n for n, p in probes.items() if p.up and p.in_recovery is False)
    warnings = []
    if len(primaries) > 1:
        warnings.append(
            f"split brain: {', '.join(primaries)} all answer as primary; fence all but one "
            "(stop it through its runtime), then `drkit replica rejoin` the others"
        )
    try:
        primary = current_primary(cluster, probes)
    except OperationError:  # a split brain drkit did not record: report it, do not pick
        primary = cluster.member(primaries[0])
    seen: dict[str, tuple[Any, ...]] = {}
    slots: dict[str, bool] = {}
    if probes[primary.name].up:
        try:
            seen = {str(r[0]): r for r in rows(cluster.dsn(primary), REPLICATION_SQL)}
            slots = {str(r[0]): bool(r[1]) for r in rows(cluster.dsn(primary), SLOTS_SQL)}
        except DrkitError:
            pass
    out = [_member(cluster, m, probes[m.name], primary, seen, slots) for m in cluster.replication.members]
    return primary.name, out, warnings


def _member(
    cluster: Cluster,
    m: Member,
    p: Probe,
    primary: Member,
    seen: dict[str, tuple[Any, ...]],
    slots: dict[str, bool],
) -> MemberStatus:
    if not p.up:
        return MemberStatus(m.name, "down", m.slot, slots.get(m.slot), error=p.error)
    if m.name == primary.name or not p.in_recovery:
        return MemberStatus(m.name, "primary" if not p.in_recovery else "standby", m.slot)
    r = seen.get(m.name)
    local: tuple[Any, ...] = ()
    with contextlib.suppress(DrkitError, IndexError):
        local = tuple(rows(cluster.dsn(m), STANDBY_SQL)[0])
    return MemberStatus(
        m.name,
        "standby",
        m.slot,
        slots.get(m.slot),
        state=str(r[1]) if r else (str(local[4]) if local and local[4] else "not streaming"),
        sync_state=str(r[2]) if r else "",
        lag_bytes=int(r[3]) if r and r[3] is not None else None,
        lag_seconds=float(r[4]) if r else None,
        replay_paused=bool(local[3]) if local else None,
        last_replay_age=float(local[2]) if local and local[2] is not None else None,
    )
