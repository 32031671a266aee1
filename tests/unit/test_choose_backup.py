"""The one rule that picks a restore's backup (engines/core/choose.py): newest by the
recorded finish time, never one dated ahead of this host's clock, and it says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import NotFoundError
from drkit.engines.core.choose import FUTURE_ALLOWANCE, choose_backup, newest, unproven_backups

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


def m(finished: datetime, suffix: str = "") -> Manifest:
    started = finished - timedelta(minutes=1)
    backup_id = f"{started:%Y%m%dT%H%M%S}Z-rdb{suffix}"
    return Manifest(backup_id, "s", "redis", BackupKind.RDB, started, finished, (), {})


HOUR_AGO, DAY_AGO, YEAR_AHEAD = m(NOW - timedelta(hours=1)), m(NOW - timedelta(days=1)), m(NOW + YEAR)


def test_a_backup_from_the_future_is_passed_over_and_named() -> None:
    choice = choose_backup([DAY_AGO, YEAR_AHEAD, HOUR_AGO], now=NOW, what="backup of redis", where="/repo")
    assert choice.manifest is HOUR_AGO
    assert [u.backup_id for u in choice.passed_over] == [YEAR_AHEAD.backup_id]
    line = choice.describe()
    assert line.startswith(f"chose {HOUR_AGO.backup_id}: the newest backup of redis (finished ")
    assert "1.0 h ago" in line and f"passed over {YEAR_AHEAD.backup_id}: finished 2027-11-30" in line
    assert "365.0 d ahead of this host's clock" in line
    assert newest([DAY_AGO, YEAR_AHEAD], NOW) is DAY_AGO


def test_within_the_allowance_a_clock_a_little_ahead_still_counts() -> None:
    close = m(NOW + FUTURE_ALLOWANCE - timedelta(seconds=1))
    assert choose_backup([HOUR_AGO, close], now=NOW, what="x", where="/r").manifest is close
    assert unproven_backups([close, m(NOW + FUTURE_ALLOWANCE + timedelta(seconds=1))], NOW)[0].backup_id


def test_only_future_backups_is_a_refusal_that_says_how_to_take_one() -> None:
    with pytest.raises(NotFoundError) as caught:
        choose_backup([YEAR_AHEAD], now=NOW, what="backup of redis", where="/repo")
    assert caught.value.message == "no backup of redis in /repo"
    assert caught.value.hint is not None and "--backup ID" in caught.value.hint
    assert YEAR_AHEAD.backup_id in caught.value.hint


def test_named_backups_are_taken_even_from_the_future_and_say_so() -> None:
    choice = choose_backup(
        [YEAR_AHEAD], now=NOW, what="backup of redis", where="/r", backup_id=YEAR_AHEAD.backup_id
    )
    assert choice.manifest is YEAR_AHEAD and "named with --backup, although finished" in choice.why
    with pytest.raises(NotFoundError, match="no backup 2026.* of redis in /r"):
        choose_backup([], now=NOW, what="backup of redis", where="/r", backup_id="20261130T000000Z-rdb")


def test_a_target_time_takes_the_newest_at_or_before_it_and_objects_the_first_after() -> None:
    at = NOW - timedelta(hours=2)
    assert (
        choose_backup([DAY_AGO, HOUR_AGO], now=NOW, what="x", where="/r", target_time=at).manifest is DAY_AGO
    )
    first = choose_backup(
        [DAY_AGO, HOUR_AGO, YEAR_AHEAD], now=NOW, what="x", where="/r", target_time=at, first_after=True
    )
    assert first.manifest is HOUR_AGO and "started at or after" in first.why
    late = choose_backup(
        [DAY_AGO, YEAR_AHEAD], now=NOW, what="x", where="/r", target_time=at, first_after=True
    )
    assert late.manifest is DAY_AGO  # none after T that this host believes: the newest


def test_ties_on_the_second_go_to_the_later_id() -> None:
    a, b = m(HOUR_AGO.finished_at), m(HOUR_AGO.finished_at, "-10")
    c = m(HOUR_AGO.finished_at, "-2")
    assert choose_backup([b, a, c], now=NOW, what="x", where="/r").manifest is b
