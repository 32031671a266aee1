"""The newest point archived WAL recovers to, as `drkit status` says it. An idle server writes
only records PostgreSQL never switches a segment for (running transactions), so its current
segment stayed unarchived and the status turned red one RPO after the last switch, on a healthy
stack (measured on the sandbox: RED 5m24s after the last switch, rpo 5m). With no segment
waiting and archive_timeout set, WAL not yet archived is at most archive_timeout old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.ops import pg_capture
from drkit.engines.ops.pg_capture import SWITCH_SLACK_SECONDS, ArchiveState, _archiver_state, capture_state

NOW = datetime(2026, 12, 6, 16, 2, 46, tzinfo=UTC)
LAST = NOW - timedelta(minutes=5, seconds=24)  # the last switch, archived
ROW = ("000000030000000000000009", LAST, 1, "00000003.history", LAST - timedelta(minutes=10))
CURRENT = "00000003000000000000000A"  # holds one RUNNING_XACTS record: never switched out
PG = Service(
    "postgres", "postgres", RuntimeSpec(type="local"), dsn="host=127.0.0.1", rpo=timedelta(minutes=5)
)


def test_no_segment_waiting_and_archive_timeout_bound_the_age() -> None:
    state = _archiver_state((*ROW, CURRENT, 60), ready=0)
    assert not state.caught_up and not state.failing
    assert state.bound_seconds == 60 + SWITCH_SLACK_SECONDS


@pytest.mark.parametrize(
    ("timeout", "ready", "failed_at"),
    [
        (0, 0, None),  # archive_timeout off: nothing forces a switch
        (60, 1, None),  # a segment waits: the archiver is behind
        (60, None, None),  # the server would not say (no pg_monitor)
        (60, 0, NOW - timedelta(seconds=1)),  # failing since the last success
    ],
)
def test_no_bound_when_it_would_not_hold(timeout: int, ready: int | None, failed_at: datetime | None) -> None:
    row = (*ROW[:4], failed_at or ROW[4], CURRENT, timeout)
    assert _archiver_state(row, ready=ready).bound_seconds is None


def fake_capture(monkeypatch: pytest.MonkeyPatch, state: ArchiveState) -> Any:
    monkeypatch.setattr(pg_capture, "newest_wal_entry", lambda _ws, _svc: ("000000030000000000000009", LAST))
    monkeypatch.setattr(pg_capture, "_ask_server", lambda _svc, _stream: state)
    return capture_state(None, PG, NOW)  # type: ignore[arg-type]


def test_an_idle_server_is_recoverable_to_now_minus_archive_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    state, point, source = fake_capture(monkeypatch, _archiver_state((*ROW, CURRENT, 60), ready=0))
    assert point == NOW - timedelta(seconds=60 + SWITCH_SLACK_SECONDS)
    assert state.lag_seconds == 65.0 < PG.rpo.total_seconds()  # type: ignore[union-attr]
    assert source.startswith("archive_timeout: no segment waits to be archived")


def test_without_the_bound_the_stored_time_stays_the_point(monkeypatch: pytest.MonkeyPatch) -> None:
    state, point, _ = fake_capture(monkeypatch, _archiver_state((*ROW, CURRENT, 60), ready=1))
    assert point == LAST and state.lag_seconds == (NOW - LAST).total_seconds()


def test_a_newer_stored_segment_wins_over_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_capture, "newest_wal_entry", lambda _ws, _svc: ("x", NOW - timedelta(seconds=3)))
    monkeypatch.setattr(
        pg_capture, "_ask_server", lambda _s, _m: _archiver_state((*ROW, CURRENT, 60), ready=0)
    )
    _, point, source = capture_state(None, PG, NOW)  # type: ignore[arg-type]
    assert point == NOW - timedelta(seconds=3) and source.startswith("newest WAL file")
