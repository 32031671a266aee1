"""The acts a switchover, a failover and a rejoin are made of."""

from __future__ import annotations

from datetime import datetime

from psycopg import sql

from drkit.adapters.postgres.client import connect, execute, rows, scalar
from drkit.domain.errors import DrkitError, OperationError
from drkit.domain.stack import Member
from drkit.engines.failover import standby
from drkit.engines.failover.cluster import Cluster, parse_lsn, sync_names
from drkit.engines.failover.rewind import rewind
from drkit.infra.clock import Clock
from drkit.infra.wait import wait_for


def wait_replayed(cluster: Cluster, member: Member, lsn: int, timeout: float) -> int:
    """Until the member replayed `lsn`: one connection, polled every 50 ms (writers may be
    paused meanwhile)."""
    with connect(cluster.dsn(member)) as conn:

        def reached() -> int | None:
            row = conn.execute("select pg_last_wal_replay_lsn()::text").fetchone()
            got = parse_lsn(row[0] if row else None)
            if got is None:
                raise OperationError(f"{member.name} is not replaying WAL (not a standby?)")
            return got if got >= lsn else None

        what = f"{member.name} to replay up to the primary's end"
        return wait_for(reached, timeout=timeout, what=what, max_interval=0.05)


def promote(cluster: Cluster, member: Member, *, keep_sync: set[str]) -> None:
    """pg_promote(), then synchronous_standby_names for the new primary: its synchronous
    standbys among `keep_sync` (the members that will follow it), else none, so a standby
    that is gone does not block every commit."""
    dsn = cluster.dsn(member)
    if scalar(dsn, "select pg_is_in_recovery()"):
        stop_restoring(cluster, member)
        if not scalar(dsn, "select pg_promote(true, 60)"):
            raise OperationError(f"pg_promote() on {member.name} did not complete within 60s")
    names = sync_names(cluster, member.name, up=keep_sync)
    with connect(dsn) as conn:
        conn.execute(sql.SQL("alter system set synchronous_standby_names = {}").format(sql.Literal(names)))
        conn.execute("select pg_reload_conf()")


def stop_restoring(cluster: Cluster, member: Member) -> str | None:
    """A standby about to be promoted stops fetching from the archive: a primary needs no
    restore_command, and the archive's lookups during promotion (the next segment, timeline
    history files) only slow it down; it keeps what it received. Done ahead of pg_promote()
    so the startup process has re-read its settings by then. Returns the command it had
    (None: none, or the member does not answer: the promotion will say so)."""
    dsn = cluster.dsn(member)
    try:
        command = scalar(dsn, "select current_setting('restore_command')")
        if not command:
            return None
        with connect(dsn) as conn:
            conn.execute("alter system reset restore_command")
            conn.execute("select pg_reload_conf()")
    except DrkitError:
        return None
    return str(command)


def resume_restoring(cluster: Cluster, member: Member, command: str | None) -> None:
    """Put back the restore_command `stop_restoring` took away (a refused failover)."""
    if not command:
        return
    with connect(cluster.dsn(member)) as conn:
        conn.execute(sql.SQL("alter system set restore_command = {}").format(sql.Literal(command)))
        conn.execute("select pg_reload_conf()")


def recovery_end(cluster: Cluster, member: Member) -> tuple[int | None, datetime | None]:
    """After a promotion: where the new timeline forked (the end of the last record replayed)
    and the newest commit replayed, both static once recovery ended."""
    found = rows(
        cluster.dsn(member), "select pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp()"
    )
    if not found:
        return None, None
    return parse_lsn(found[0][0]), found[0][1]


def write_check(cluster: Cluster, member: Member, clock: Clock, timeout: float = 30.0) -> datetime:
    """A transaction that takes a transaction id commits on the member: it accepts writes."""

    def commit() -> datetime:
        with connect(cluster.dsn(member), autocommit=False) as conn:
            conn.execute("select pg_current_xact_id()")
            conn.commit()
        return clock.now()

    return wait_for(commit, timeout=timeout, what=f"{member.name} to accept writes", retry_on=(DrkitError,))


def follow(cluster: Cluster, member: Member, primary: Member, restore_command: str | None) -> str:
    """Make a stopped former primary (or a stray member) a standby of `primary`: pg_rewind
    when its history diverged, standby.signal and primary_conninfo, its slot, start."""
    runtime = cluster.runtime(member)
    if runtime.is_running():
        runtime.stop()
    rewound = rewind(cluster, member, primary)
    standby.write_standby_settings(cluster, member, primary, restore_command)
    standby.ensure_slot(cluster, primary, member.slot)
    runtime.start()
    return f"{rewound}; standby of {primary.name} on slot {member.slot}"


def wait_streaming(cluster: Cluster, member: Member, primary: Member, timeout: float) -> str:
    query = "select state from pg_stat_replication where application_name = %s"

    def streaming() -> str | None:
        found = rows(cluster.dsn(primary), query, (member.name,))
        return str(found[0][0]) if found and found[0][0] == "streaming" else None

    return wait_for(
        streaming,
        timeout=timeout,
        what=f"{member.name} to stream from {primary.name}",
        retry_on=(DrkitError,),
    )


def set_sync(cluster: Cluster, primary: Member, names: str) -> None:
    with connect(cluster.dsn(primary)) as conn:
        conn.execute(sql.SQL("alter system set synchronous_standby_names = {}").format(sql.Literal(names)))
        conn.execute("select pg_reload_conf()")


def current_lsn(cluster: Cluster, primary: Member) -> int:
    value = parse_lsn(scalar(cluster.dsn(primary), "select pg_current_wal_lsn()::text"))
    if value is None:
        raise OperationError(f"{primary.name}: no current WAL position")
    return value


def checkpoint(cluster: Cluster, member: Member) -> None:
    execute(cluster.dsn(member), "checkpoint")
