"""Close a running primary's current WAL segment and wait until drkit's archive holds it, as
`barman switch-wal --archive` and pgBackRest's `check` do.

Archive mode archives only complete segments, so what was committed in the last minutes sits
in a segment still being written: a point-in-time recovery to a minute ago needs it closed
and archived, and so does a proof that archiving works end to end. The segment is waited
for in drkit's repository (where a recovery reads it), not in pg_stat_archiver; a failure
of archive_command on it, or a stream receiver that never delivers it, ends the wait with a
message saying so instead of a timeout.

Nothing is switched when nothing was written: `pg_switch_wal()` then returns the end of the
last segment, already archived. A caller that needs a new segment asks for a WAL record
first: `commit=True` commits one empty transaction (recovery to a time stops at the first
commit after it, so a target after the last commit needs one), `restore_point` writes a
named restore point (what pgBackRest's check does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.domain.errors import OperationError
from drkit.domain.stack import Service, WalMode
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.wal.archive import archive_for
from drkit.engines.postgres.wal.stream import flush_spool
from drkit.infra.wait import wait_for

Say = Callable[[str], None]
DEFAULT_WAIT = 120.0


@dataclass(frozen=True)
class SwitchedWal:
    segment: str  # the segment closed (or the last complete one when nothing was written)
    lsn: str  # where the server's WAL stood after the switch
    seconds: float  # from the switch to the segment found in the repository
    key: str  # where the repository holds it
    restore_point_lsn: str | None = None  # where the named restore point asked for was written


def switch_wal_and_wait(
    ws: Workspace,
    service: Service,
    *,
    commit: bool = False,
    restore_point: str | None = None,
    timeout: float = DEFAULT_WAIT,
    say: Say | None = None,
) -> SwitchedWal:
    """Switch WAL on `service` (a running primary) and wait for the closed segment to reach
    the repository. Raises OperationError naming the segment when it does not."""
    say = say or (lambda _m: None)
    with connect(service_dsn(service, connect_timeout=10)) as conn:
        _require_primary(conn, service)
        if commit:  # one empty transaction: a commit record with the current time
            conn.execute("select pg_current_xact_id()")
        point_lsn = None
        if restore_point:
            point_lsn = str(_one(conn, "select pg_create_restore_point(%s)::text", (restore_point,)))
        failures_before = _one(conn, "select failed_count from pg_stat_archiver") or 0
        row = conn.execute("select pg_walfile_name(pg_switch_wal()), pg_current_wal_lsn()::text").fetchone()
        if row is None:
            raise OperationError(f"pg_switch_wal() on {service.name} returned nothing")
        segment, lsn = str(row[0]), str(row[1])
        say(f"switched WAL on {service.name}: waiting for segment {segment} to reach the repository")
        started = ws.clock.monotonic()
        key = _wait_archived(ws, service, conn, segment, failures_before, timeout)
    seconds = ws.clock.monotonic() - started
    say(f"segment {segment} archived ({seconds:.1f}s)")
    return SwitchedWal(segment, lsn, seconds, key, point_lsn)


def _require_primary(conn: Any, service: Service) -> None:
    if _one(conn, "select pg_is_in_recovery()"):
        raise OperationError(
            f"{service.name} is in recovery (a standby, or still starting up): only a primary "
            "switches WAL; switch on the primary, or choose a target the archive already reaches"
        )


def _one(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _wait_archived(
    ws: Workspace, service: Service, conn: Any, segment: str, failures_before: int, timeout: float
) -> str:
    archive = archive_for(ws, service)
    stream = service.postgres is not None and service.postgres.wal_mode is WalMode.STREAM

    def arrived() -> str | None:
        if stream:
            flush_spool(ws, service)  # a receiver on this host: move what it wrote into the archive
        else:
            _archive_command_failing(conn, service, segment, failures_before)
        return archive.find(segment)

    how = (
        "the WAL receiver (`drkit wal-stream`, or `drkit schedule run` supervising it) to deliver it"
        if stream
        else "archive_command (`drkit wal-push`) to store it"
    )
    return wait_for(
        arrived,
        timeout=timeout,
        what=f"WAL segment {segment} of {service.name} in the repository ({how})",
    )


class ArchiveCommandFailing(OperationError):
    """archive_command failed on the segment drkit waits for."""


# PostgreSQL's archiver tries a segment three times in a row before it pauses: that many new
# failures, with no success since, is archive_command failing, not a hiccup.
ARCHIVER_RETRIES = 3


def _archive_command_failing(conn: Any, service: Service, segment: str, failures_before: int) -> None:
    row = conn.execute(
        "select failed_count, last_failed_wal, last_failed_time, last_archived_time from pg_stat_archiver"
    ).fetchone()
    if row is None:
        return
    failed, failed_wal, failed_at, archived_at = row
    if failed - failures_before < ARCHIVER_RETRIES or (archived_at is not None and archived_at > failed_at):
        return
    raise ArchiveCommandFailing(
        f"archive_command failed {failed - failures_before} times (last on {failed_wal} at "
        f"{failed_at:%H:%M:%S}) while drkit waited for {segment}: archiving of {service.name} is "
        "broken, so WAL since then is not in the repository. See the PostgreSQL log (and `drkit check`)"
    )
