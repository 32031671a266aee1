"""The server starts only once the WAL it reads first is spooled (or known to be absent), so
no segment of a bounded recovery costs a `drkit wal-fetch` process; a prefetcher that stops
making progress never holds the restore up for long."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from drkit.domain.backup import BackupKind, Manifest, PostgresInfo
from drkit.domain.recovery import RecoveryTarget
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR
from drkit.engines.postgres.wal_ready import STALL, needed_first, wait_prefetched

SEG = 16 << 20


def plan(first: str, last: str | None) -> RestorePlan:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    pg = PostgresInfo("0/2000028", "0/2000100", 1, SEG, 150000, "7001")
    m = Manifest("B", "demo", "postgres", BackupKind.BASE, at, at, (), {}, postgres=pg)
    return RestorePlan(m, RecoveryTarget(), first, last, False)


def test_the_segments_read_first_run_from_the_backup_to_one_past_the_plan() -> None:
    names = needed_first(plan("000000010000000000000002", "000000010000000000000004"))
    assert names == [f"00000001000000000000000{n}" for n in (2, 3, 4, 5)]
    assert needed_first(plan("000000010000000000000002", None)) == [
        "000000010000000000000002",
        "000000010000000000000003",
    ]
    assert len(needed_first(plan("000000010000000000000002", "0000000100000000000000FF"))) == 16


class Clock:
    """Time moves only when the waiter sleeps; the prefetcher spools a file every few sleeps."""

    def __init__(self, spool: Path, arrivals: list[str], every: int) -> None:
        self.t, self.spool, self.arrivals, self.every, self.sleeps = 0.0, spool, arrivals, every, 0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.sleeps += 1
        if self.arrivals and self.sleeps % self.every == 0:
            (self.spool / self.arrivals.pop(0)).write_bytes(b"")


def test_the_server_waits_for_the_spool_and_never_long_for_a_stuck_prefetcher(tmp_path: Path) -> None:
    spool = tmp_path / PREFETCH_DIR
    spool.mkdir()
    names = ["000000010000000000000002", "000000010000000000000003"]
    clock = Clock(spool, [names[0], f".absent-{names[1]}"], every=10)
    assert wait_prefetched(tmp_path, names, clock) is True  # a segment, and the end of the WAL
    assert 0.2 <= clock.t < 1

    stuck = Clock(spool, [], every=10)
    assert wait_prefetched(tmp_path, ["000000010000000000000009"], stuck) is False
    assert STALL <= stuck.t < STALL + 1
