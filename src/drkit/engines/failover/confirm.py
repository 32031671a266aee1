"""Before a failover: is the primary really down (several failed probes over a window: a
blip must not trigger it), and is the candidate close enough to it (its lag against the
PostgreSQL RPO target)?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from drkit.adapters.postgres.client import rows
from drkit.domain.errors import OperationError
from drkit.infra.clock import Clock

LAG_SQL = """
select pg_is_in_recovery(),
       pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
       case when pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()
            then coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp())::float,
                          'Infinity'::float)
            else 0 end,
       extract(epoch from pg_last_xact_replay_timestamp())::float
"""


def confirm_down(
    is_up: Callable[[], bool], *, probes: int, window: float, clock: Clock, say: Callable[[str], None]
) -> datetime:
    """Probe `probes` times, evenly over `window` seconds; the moment of the first failed
    probe when every one failed. One probe answering means the primary is not down."""
    interval = window / max(1, probes - 1)
    first: datetime | None = None
    for n in range(1, probes + 1):
        started = clock.monotonic()
        at = clock.now()
        if is_up():
            raise OperationError(
                f"the primary answered probe {n}/{probes}: not down (a blip does not trigger a failover)"
            )
        first = first or at
        say(f"probe {n}/{probes}: primary down")
        if n < probes:
            clock.sleep(max(0.0, interval - (clock.monotonic() - started)))
    if first is None:
        raise OperationError("no probe ran")
    return first


@dataclass(frozen=True)
class Lag:
    received: str | None
    replayed: str | None
    seconds: float  # how far behind its replay is (0: replayed all it received; inf: unknown)
    last_replay_epoch: float | None


def candidate_lag(dsn: str) -> Lag:
    found = rows(dsn, LAG_SQL)
    if not found or not found[0][0]:
        raise OperationError("the candidate is not a standby (it is not in recovery)")
    r = found[0]
    return Lag(r[1], r[2], float(r[3] or 0.0), float(r[4]) if r[4] is not None else None)


def check_lag(lag: Lag, max_lag: float | None, *, force: bool) -> str:
    """A sentence for the journal; refuses beyond `max_lag` unless forced."""
    behind = (
        "an unknown time (no transaction replayed yet)"
        if lag.seconds == float("inf")
        else f"{lag.seconds:.1f}s"
    )
    said = f"received {lag.received}, replayed {lag.replayed}, {behind} behind"
    if max_lag is None or lag.seconds <= max_lag:
        return said
    if force:
        return f"{said}: beyond the {max_lag:.0f}s RPO target, forced"
    raise OperationError(
        f"the candidate is {behind} behind, beyond the {max_lag:.0f}s RPO target: "
        "refusing (--force promotes it anyway)"
    )
