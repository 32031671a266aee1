"""Moments as operators type them (`--target-time`, `--since`): a time without a zone is the
local zone's, relative and day forms work, and what cannot be read names the option, the value
and the accepted forms (issue 18, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drkit.domain.times import FORMS, describe_moment, parse_moment
from tests.conftest import run_drkit

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 2, 9, 15, 0, 0, tzinfo=UTC)  # 16:00 in Berlin


def at(text: str, zone: ZoneInfo = BERLIN) -> datetime:
    return parse_moment(text, now=NOW, local=zone).at


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-02-09 14:30", datetime(2026, 2, 9, 13, 30, tzinfo=UTC)),  # CET: local, not UTC
        ("2026-07-09 14:30:05", datetime(2026, 7, 9, 12, 30, 5, tzinfo=UTC)),  # CEST
        ("2026-02-09T14:30:00Z", datetime(2026, 2, 9, 14, 30, tzinfo=UTC)),
        ("2026-02-09 14:30:00 UTC", datetime(2026, 2, 9, 14, 30, tzinfo=UTC)),
        ("2026-02-09 14:30:00+03:00", datetime(2026, 2, 9, 11, 30, tzinfo=UTC)),
        ("2026-02-09 14:30 America/New_York", datetime(2026, 2, 9, 19, 30, tzinfo=UTC)),
        ("today 14:30", datetime(2026, 2, 9, 13, 30, tzinfo=UTC)),
        ("yesterday 9:05", datetime(2026, 2, 8, 8, 5, tzinfo=UTC)),
        ("-2h", NOW - timedelta(hours=2)),
        ("-1h30m", NOW - timedelta(minutes=90)),
        ("90s ago", NOW - timedelta(seconds=90)),
        ("now", NOW),
    ],
)
def test_accepted_forms(text: str, utc: datetime) -> None:
    assert at(text) == utc


def test_a_time_without_a_zone_is_read_in_the_local_zone_and_said_in_both() -> None:
    moment = parse_moment("2026-02-09 14:30", now=NOW, local=BERLIN)
    assert moment.local
    assert describe_moment(moment, BERLIN) == "2026-02-09 14:30:00 CET (+01:00) = 2026-02-09 13:30:00 UTC"


def test_the_local_day_is_the_local_zones_not_utcs() -> None:
    late = datetime(2026, 2, 9, 23, 30, tzinfo=UTC)  # already the 10th in Berlin
    assert parse_moment("today 08:00", now=late, local=BERLIN).at == datetime(2026, 2, 10, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("yesterday", "yesterday needs a time of day"),
        ("soon", f"not a time drkit reads: use one of {FORMS}"),
        ("2026-13-01 10:00", "not a date that exists (month must be in 1..12)"),
        ("2026-02-30 10:00", "not a date that exists"),
        ("-2 fortnights", "is not a duration"),
        ("2026-02-09 14:30 Mars/Olympus", "'Mars/Olympus' is not a time zone"),
        ("2026-03-29 02:30", "does not exist in Europe/Berlin (the clocks skip it)"),
        ("2026-10-25 02:30", "happens twice in Europe/Berlin (the clocks go back): add the offset you mean"),
    ],
)
def test_what_cannot_be_read_says_why(text: str, words: str) -> None:
    with pytest.raises(ValueError) as exc:
        at(text)
    assert words in str(exc.value)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(
        "stack: demo\nrepositories:\n  local: {type: fs, path: ./repo}\n"
        "services:\n  postgres: {kind: postgres}\n"
    )
    return path


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("yesterday", "--target-time 'yesterday': yesterday needs a time of day"),
        (
            "2026-13-01 10:00",
            "--target-time '2026-13-01 10:00': not a date that exists (month must be in 1..12)",
        ),
        ("whenever", "--target-time 'whenever': not a time drkit reads: use one of 2026-02-09T14:30:00Z"),
    ],
)
def test_restore_names_the_option_the_value_and_the_forms(config: Path, value: str, words: str) -> None:
    result = run_drkit("restore", "postgres", "--target-time", value, "--to", "/nonexistent/x", config=config)
    assert result.code == 2, result.stderr
    assert words in result.stderr
    assert "Invalid isoformat" not in result.stderr and "Traceback" not in result.stderr


def test_recover_since_names_its_option(config: Path) -> None:
    result = run_drkit("--dry-run", "recover", "full-outage", "--since", "2026-02-30 10:00", config=config)
    assert result.code == 2, result.stderr
    assert "--since '2026-02-30 10:00': not a date that exists" in result.stderr
