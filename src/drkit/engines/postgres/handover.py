"""Handing a live PostgreSQL over to an in-place restore: the one sequence every runtime
(a local process, in_place.py; a compose container, restore_compose.py) goes through.

1. For a restore to latest, a running server closes and archives its current WAL segment
   (switch_wal.py); the server stops.
2. Whatever its pg_wal holds that the archive lacks is saved into the archive (salvage.py),
   whether it ran, stopped cleanly or crashed; a latest restore is planned again from there.
3. The data is moved aside (infra/aside.py: a name never reused, a ledger saying whether
   the server was running).
A failure or a signal in any of these starts the server again if it was running and says
so; nothing was moved then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.domain.errors import OperationError
from drkit.domain.recovery import TargetKind
from drkit.domain.stack import Service
from drkit.domain.wal import Segment
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.outcome import restore_failed
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.preflight import Checked
from drkit.engines.postgres.salvage import salvage_wal
from drkit.engines.postgres.switch_wal import DEFAULT_WAIT as SWITCH_WAIT
from drkit.engines.postgres.switch_wal import switch_wal_and_wait
from drkit.infra.aside import Aside
from drkit.infra.hold import hold
from drkit.infra.interrupt import deferred

STARTING_UP = ("the database system is starting up", "not yet accepting connections")
Replan = Callable[[], tuple[RestorePlan, Checked]]


@dataclass(frozen=True)
class Live:
    """The server being replaced, as its runtime handles it."""

    data_dir: Path  # PGDATA on this host (its pg_wal is salvaged)
    running: bool  # it ran (for clients) when the restore began
    archive_first: bool  # it can be asked to archive its current segment (it runs)
    stop: Callable[[], None]
    start_again: Callable[[], tuple[str, bool]]  # (what is left where, ok)
    move_aside: Callable[[], Aside]


def stop_and_move(
    ws: Workspace,
    service: Service,
    live: Live,
    chosen: RestorePlan,
    checked: Checked,
    replan: Replan,
    notes: list[str],
) -> tuple[Aside, RestorePlan, Checked]:
    """Steps 1 to 3 of the module's docstring. Returns the aside and the plan (planned
    again for latest, with the salvaged WAL archived)."""
    latest = chosen.target.kind is TargetKind.LATEST
    if latest and live.running and live.archive_first:
        notes.append(archive_current_segment(ws, service))
    live.stop()
    try:
        pg = chosen.backup.require_postgres()
        salvaged = salvage_wal(
            ws,
            service,
            live.data_dir,
            since=Segment.parse(chosen.first_segment, pg.wal_segment_size),
            cluster=pg.system_identifier,
            config_hint=ws.stack.source_path,
        )
        notes.append(f"old pg_wal: {salvaged.describe()}")
        if latest:
            chosen, checked = replan()
        hold("move-aside")
        aside = live.move_aside()
    except BaseException as exc:
        with deferred():
            left, ok = live.start_again()
        raise restore_failed(exc, f"nothing was moved; {left}", rolled_back=ok) from exc
    return aside, chosen, checked


def reached_facts(reached: dict[str, object]) -> dict[str, str]:
    """What the ledger records of the point a restore reached."""
    when = reached.get("time")
    return {
        "reached_lsn": str(reached.get("lsn") or ""),
        "reached_time": when.isoformat() if isinstance(when, datetime) else "",
        "timeline": str(reached.get("timeline") or ""),
    }


def archive_current_segment(ws: Workspace, service: Service, *, wait: float = SWITCH_WAIT) -> str:
    """Before a running server is stopped for a restore to latest: close its current WAL
    segment and wait until the repository holds it (switch_wal.py, the one mechanism), so
    the archive holds whole segments. When that fails (archiving broken), the restore goes
    on: what pg_wal holds is saved after the stop (salvage.py), or the restore refuses.
    Says what happened."""
    try:
        with connect(service_dsn(service, connect_timeout=10)) as conn:
            state = conn.execute("select pg_is_in_recovery(), current_setting('archive_mode')").fetchone()
        if state is None or state[0] or state[1] == "off":
            return "no current WAL segment to archive (in recovery, or not archiving)"
        switched = switch_wal_and_wait(ws, service, timeout=wait)
    except (OperationError, psycopg.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if any(s in first for s in STARTING_UP):
            return "the server is still recovering: it wrote no WAL of its own"
        return (
            f"the server could not archive its current WAL segment ({first}); "
            "its pg_wal is read after it stops"
        )
    return f"current WAL segment {switched.segment} archived"
