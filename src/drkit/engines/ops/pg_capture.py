"""PostgreSQL's WAL capture for `drkit status` and `drkit metrics`: the archiver
(pg_stat_archiver) or the stream receiver (its slot and this host's spool), and the newest
point the captured WAL recovers to."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service, WalMode
from drkit.domain.wal import PARTIAL_RE, SEGMENT_RE
from drkit.engines.core.layout import wal_prefix
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.wal.stream import spool_dir

ARCHIVER_SQL = (
    "select last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time, "
    "pg_walfile_name(pg_current_wal_lsn()), "
    "(select setting::int from pg_settings where name = 'archive_timeout') from pg_stat_archiver"
)
# The checkpointer's switch for archive_timeout comes within a second or so of its time: the
# bound below allows this much more.
SWITCH_SLACK_SECONDS = 5.0
# pg_walfile_name() of a position on a segment boundary names the segment before it, so right
# after a switch the current segment is the one just archived: nothing is waiting.
SLOT_SQL = "select active, restart_lsn >= pg_current_wal_lsn() from pg_replication_slots where slot_name = %s"


@dataclass(frozen=True)
class ArchiveState:
    """PostgreSQL's WAL capture: the archiver (pg_stat_archiver) or the stream receiver."""

    mode: str  # archive | stream
    caught_up: bool | None  # every WAL byte written is captured (None: the server did not say)
    failing: bool
    lag_seconds: float | None  # 0 when caught up; else the age of the newest captured WAL
    last_archived_wal: str | None = None
    last_archived_at: datetime | None = None
    failed_count: int = 0
    last_failed_at: datetime | None = None
    detail: str = ""
    # Archive mode, healthy, no segment waiting: WAL not yet archived is at most this old
    # (archive_timeout: PostgreSQL switches out any segment with changes that old). None: no bound.
    bound_seconds: float | None = None


def capture_state(
    ws: Workspace, service: Service, now: datetime, *, probe_server: bool = True
) -> tuple[ArchiveState, datetime | None, str]:
    """The capture's state, the newest recoverable point it gives, and where that came from."""
    stream = service.postgres is not None and service.postgres.wal_mode is WalMode.STREAM
    stored = newest_wal_entry(ws, service)
    point, source = (stored[1], "newest WAL file in the repository (stored at)") if stored else (None, "")
    if stream:
        flushed = spool_flush(ws, service)
        if flushed is not None and (point is None or flushed > point):
            point, source = flushed, "stream receiver's last flush (spool on this host)"
    state = _ask_server(service, stream) if probe_server else None
    if state is None:
        state = ArchiveState("stream" if stream else "archive", None, False, None, detail="server not asked")
    if state.caught_up and not state.failing:
        return _with_lag(state, 0.0), now, "now: every WAL byte written is captured"
    if point is not None and state.bound_seconds is not None and not state.failing:
        bound = now - timedelta(seconds=state.bound_seconds)
        if bound > point:  # an idle server's segment of unimportant records is never switched out
            point = bound
            source = (
                "archive_timeout: no segment waits to be archived, and PostgreSQL switches out "
                f"any segment with changes {state.bound_seconds - SWITCH_SLACK_SECONDS:.0f}s old"
            )
    lag = (now - point).total_seconds() if point is not None else None
    return _with_lag(state, lag), point, source


def _with_lag(state: ArchiveState, lag: float | None) -> ArchiveState:
    return replace(state, lag_seconds=lag)


def _ask_server(service: Service, stream: bool) -> ArchiveState:
    from drkit.adapters.postgres.client import archive_ready_count, rows, service_dsn

    mode = "stream" if stream else "archive"
    try:
        dsn = service_dsn(service)
        if stream:
            slot = service.postgres.slot if service.postgres else "drkit"
            return _stream_state(rows(dsn, SLOT_SQL, (slot,)), slot)
        return _archiver_state(rows(dsn, ARCHIVER_SQL)[0], archive_ready_count(dsn))
    except DrkitError as exc:
        return ArchiveState(mode, None, False, None, detail=f"cannot ask the server: {exc.message}")


def _archiver_state(row: tuple[Any, ...], ready: int | None = None) -> ArchiveState:
    """From pg_stat_archiver's row (and archive_timeout) and the count of segments waiting
    (`.ready` files; None: unknown)."""
    last_wal, last_at, failed, failed_wal, failed_at, current, timeout = row
    failing = failed_at is not None and (last_at is None or failed_at > last_at)
    caught_up = last_wal is not None and current is not None and current[:8] == last_wal[:8]
    caught_up = caught_up and current <= last_wal
    # Only the current segment is not archived, and archive_timeout bounds how old its changes
    # can be: an idle server (whose segment holds only records PostgreSQL does not switch for)
    # must not look older and older.
    bounded = not failing and last_wal is not None and ready == 0 and bool(timeout)
    if failing:
        detail = f"{failed} failed attempt(s), the last for {failed_wal} at {failed_at:%Y-%m-%d %H:%M:%S}"
    else:
        detail = f"last archived {last_wal or 'nothing yet'}"
    return ArchiveState(
        "archive",
        caught_up=bool(caught_up),
        failing=failing,
        lag_seconds=None,
        last_archived_wal=last_wal,
        last_archived_at=last_at,
        failed_count=int(failed or 0),
        last_failed_at=failed_at,
        detail=detail,
        bound_seconds=float(timeout) + SWITCH_SLACK_SECONDS if bounded else None,
    )


def _stream_state(found: list[tuple[Any, ...]], slot: str) -> ArchiveState:
    if not found:
        return ArchiveState("stream", False, True, None, detail=f"replication slot {slot!r} does not exist")
    active, flushed_all = found[0]
    if not active:
        return ArchiveState("stream", False, True, None, detail=f"nothing is receiving on slot {slot!r}")
    return ArchiveState("stream", bool(flushed_all), False, None, detail=f"receiving on slot {slot!r}")


def newest_wal_entry(ws: Workspace, service: Service) -> tuple[str, datetime] | None:
    """The newest WAL file in the repository (segment or partial) and when it was stored."""
    newest: tuple[str, datetime] | None = None
    for entry in ws.repo.entries(wal_prefix(ws.stack.name, service.name)):
        base = entry.key.rsplit("/", 1)[-1].removesuffix(".age").removesuffix(".zst")
        if not (SEGMENT_RE.match(base) or PARTIAL_RE.match(base)):
            continue
        if newest is None or entry.modified > newest[1]:
            newest = (base, entry.modified)
    return newest


def spool_flush(ws: Workspace, service: Service) -> datetime | None:
    """The last flush of this host's stream receiver: its `.partial` file's modification time."""
    spool = spool_dir(ws, service)
    try:
        times = [p.stat().st_mtime for p in spool.iterdir() if PARTIAL_RE.match(p.name)]
    except OSError:
        return None
    return datetime.fromtimestamp(max(times), UTC) if times else None
