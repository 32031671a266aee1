"""Where the old primary's WAL was, as seen from the other members while a failover confirms
the loss: each standby's WAL receiver holds the primary's WAL end as the primary last
reported it (with the primary's clock), what the standby received and replayed, and when it
last heard from the primary. Looked at on every probe, since a receiver forgets all of it
when it gives up (wal_receiver_timeout)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import psycopg

from drkit.adapters.postgres.client import connect
from drkit.adapters.postgres.wal_tail import WalTail, read_tail
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Member
from drkit.engines.failover.cluster import Cluster, parse_lsn, unreachable
from drkit.engines.failover.loss import Candidate, Position
from drkit.engines.failover.standby import data_dir_here

STANDBY_SQL = """
select pg_is_in_recovery(),
       pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
       pg_last_xact_replay_timestamp(),
       r.status, r.latest_end_lsn::text, r.latest_end_time, r.last_msg_receipt_time,
       r.last_msg_send_time
from (select 1) one left join pg_stat_wal_receiver r on true
"""


@dataclass(frozen=True)
class StandbyView:
    """One look at a standby."""

    member: str
    candidate: Candidate
    primary_end: Position | None  # the primary's WAL end, as it last reported it
    heard_at: datetime | None  # when the standby last heard from the primary (its clock)


def look(cluster: Cluster, member: Member, timeout: float) -> StandbyView | None:
    """The standby's view, or None when it does not answer or is not a standby."""
    if unreachable(cluster, member, timeout):  # libpq waits 2 s at least
        return None
    dsn = cluster.dsn(member, connect_timeout=max(2, round(timeout)))
    try:
        with connect(dsn) as conn:
            row = conn.execute(STANDBY_SQL).fetchone()
    except (DrkitError, psycopg.Error, OSError):  # a standby that does not answer adds no evidence
        return None
    if row is None or not row[0]:
        return None
    received, replayed = parse_lsn(row[1]), parse_lsn(row[2])
    best = max((x for x in (received, replayed) if x is not None), default=None)
    receiving = row[4] == "streaming"
    end = parse_lsn(row[5])
    primary_end = (
        Position(end, row[6], f"the primary's WAL end as {member.name}'s WAL receiver last heard it")
        if end is not None
        else None
    )
    # what it receives left the primary this long before (the two hosts' clocks)
    latency = max(0.0, (row[7] - row[8]).total_seconds()) if receiving and row[7] and row[8] else None
    candidate = Candidate(best, replayed, row[3], receiving, latency)
    return StandbyView(member.name, candidate, primary_end, row[7])


def looks(cluster: Cluster, names: list[str], timeout: float) -> list[StandbyView]:
    found = (look(cluster, cluster.member(n), timeout) for n in names)
    return [v for v in found if v is not None]


def known_positions(peers: list[StandbyView], views: list[StandbyView]) -> list[Position]:
    """The primary's WAL end as every receiver last heard it (`views`), and what each of
    `peers` received (the primary had at least that, by the time of its newest commit)."""
    reported = [v.primary_end for v in views if v.primary_end is not None]
    received = [
        Position(v.candidate.received, v.candidate.last_commit, f"what {v.member} received")
        for v in peers
        if v.candidate.received is not None
    ]
    return reported + received


def latency(views: list[StandbyView], member: str) -> float | None:
    """The member's transfer latency in its latest look while it was streaming."""
    seen = [v.candidate.latency for v in views if v.member == member and v.candidate.latency is not None]
    return seen[-1] if seen else None


def heard_after(views: list[StandbyView], moment: datetime) -> list[str]:
    """The standbys that heard from the primary after `moment` (they can still reach it)."""
    return sorted({v.member for v in views if v.candidate.receiving and v.heard_at and v.heard_at > moment})


_SEGMENT = re.compile(r"^([0-9A-F]{8})[0-9A-F]{16}$")


def old_wal(member: Member, start: int) -> tuple[WalTail | None, str]:
    """The old primary's WAL from `start` to its end, read from its data directory on this
    host (its newest timeline), or None and why not."""
    directory = data_dir_here(member)
    if directory is None:
        return None, f"{member.name}'s data directory is not on this host"
    wal = directory / "pg_wal"
    try:
        timelines = [int(m.group(1), 16) for p in wal.iterdir() if (m := _SEGMENT.match(p.name))]
        if not timelines:
            return None, f"no WAL segment in {wal}"
        return read_tail(wal, max(timelines), start, bin_dir=member.runtime.bin_dir), ""
    except (DrkitError, OSError) as exc:
        return None, f"cannot read {wal}: {exc}"
