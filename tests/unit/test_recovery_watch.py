"""The wait for a restored server follows its recovery: minutes of progress are not a
failure, a stall is (with the last position reached), and so is the restore's own limit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.domain.errors import OperationError
from drkit.engines.postgres.recovery_watch import (
    RecoveryState,
    RecoveryStopped,
    failure_reason,
    follow_recovery,
    startup_activity,
)

PROMOTED = {"lsn": "0/9000060", "time": None, "timeline": 2}


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def scripted(clock: FakeClock, at: Callable[[float], RecoveryState]) -> Callable[[], RecoveryState]:
    """A probe whose answer depends on the (fake) time."""
    return lambda: at(clock.t)


def lsn_every(seconds: float, until: float) -> Callable[[float], RecoveryState]:
    """A recovery that replays a little more every `seconds`, and promotes at `until`."""

    def at(t: float) -> RecoveryState:
        if t >= until:
            return RecoveryState(promoted=PROMOTED)
        return RecoveryState(position=f"LSN 0/{int(t // seconds):X}000000")

    return at


def test_a_recovery_of_hours_that_keeps_moving_is_followed_to_its_end() -> None:
    clock = FakeClock()
    probe = scripted(clock, lsn_every(30, until=3 * 3600))  # far beyond pg_ctl's two minutes
    assert follow_recovery(probe, limit=4 * 3600, stall=120, clock=clock) == PROMOTED
    assert 3 * 3600 <= clock.t < 3 * 3600 + 2


def test_a_stall_is_reported_with_the_last_position() -> None:
    clock = FakeClock()

    def at(t: float) -> RecoveryState:
        return RecoveryState(position="LSN 0/5000028" if t >= 10 else "LSN 0/3000000")

    with pytest.raises(OperationError, match=r"no progress for 6\d\ds; it last reached LSN 0/5000028"):
        follow_recovery(scripted(clock, at), limit=3600, stall=600, clock=clock)
    assert 610 <= clock.t < 612


def test_progress_before_connections_counts_the_startup_title() -> None:
    clock = FakeClock()

    def at(t: float) -> RecoveryState:
        if t >= 1000:
            return RecoveryState(promoted=PROMOTED)
        return RecoveryState(
            position=f"postgres: startup recovering 0000000100000000000000{int(t // 90):02X}"
        )

    assert follow_recovery(scripted(clock, at), limit=3600, stall=100, clock=clock) == PROMOTED


def test_no_position_at_all_is_a_stall_too() -> None:
    clock = FakeClock()
    with pytest.raises(OperationError, match="no progress for 30s; it reported no position at all"):
        follow_recovery(RecoveryState, limit=3600, stall=30, clock=clock)


def test_the_restores_own_limit_ends_the_wait_even_with_progress() -> None:
    clock = FakeClock()
    probe = scripted(clock, lsn_every(5, until=10_000))
    with pytest.raises(OperationError, match=r"within the restore's limit of 600s; it last reached LSN 0/"):
        follow_recovery(probe, limit=600, stall=60, clock=clock)
    assert 600 <= clock.t < 602


def test_a_server_that_exits_stops_the_wait_at_once() -> None:
    clock = FakeClock()

    def probe() -> RecoveryState:
        raise RecoveryStopped("FATAL: could not restore file")

    with pytest.raises(RecoveryStopped):
        follow_recovery(probe, limit=3600, stall=600, clock=clock)
    assert clock.t == 0


def test_startup_activity_finds_the_postmasters_startup_child(tmp_path: Path) -> None:
    def process(pid: int, ppid: int, title: str) -> None:
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "stat").write_text(f"{pid} (postgres) S {ppid} 1 1 0 -1\n")
        (d / "cmdline").write_bytes(title.encode() + b"\0")

    process(100, 1, "/usr/lib/postgresql/15/bin/postgres -D /data")
    process(101, 100, "postgres: checkpointer ")
    process(102, 100, "postgres: startup recovering 000000010000000000000007")
    process(202, 200, "postgres: startup recovering 0000000100000000000000FF")  # another server
    (tmp_path / "self").mkdir()
    assert startup_activity(100, tmp_path) == "postgres: startup recovering 000000010000000000000007"
    assert startup_activity(300, tmp_path) is None
    assert startup_activity(None, tmp_path) is None


def test_failure_reason_names_the_fatal_line_and_what_wal_fetch_said(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text(
        'LOG:  restored log file "000000010000000000000004" from archive\n'
        "error: cannot write 000000010000000000000005 to pg_wal/RECOVERYXLOG: No space left on device\n"
        'FATAL:  could not restore file "000000010000000000000005" from archive: command not executable\n'
        "LOG:  startup process (PID 7) exited with exit code 1\n"
        "LOG:  database system is shut down\n"
    )
    reason = failure_reason(str(log))
    assert reason.startswith('FATAL:  could not restore file "000000010000000000000005"')
    assert reason.endswith(
        "(cannot write 000000010000000000000005 to pg_wal/RECOVERYXLOG: No space left on device)"
    )
    assert failure_reason(str(tmp_path / "none")) == "(no log)"
