"""Durations as operators write them in stack.yaml (rpo: 5m, wal_retention: 7d)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drkit.domain.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
        ("45", timedelta(seconds=45)),
        (" 5M ", timedelta(minutes=5)),
        ("30M", timedelta(minutes=30)),
    ],
)
def test_parse_duration_good_values(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "m",
        "5x",
        "5 m",
        "1h 30m",
        "1.5h",
        "-5m",
        "5m3",
        "h1",
        "five minutes",
        "5mm",
        "P1D",
    ],
)
def test_parse_duration_bad_values_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad duration .*like 90s, 5m, 1h, 7d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(seconds=1.25), "1.2s"),
        (59.94, "59.9s"),
        (timedelta(minutes=3, seconds=4), "3m04s"),
        (timedelta(hours=2, minutes=5), "2h05m"),
        (timedelta(hours=47, minutes=59), "47h59m"),
        (timedelta(days=3, hours=4), "3d04h"),
    ],
)
def test_format_duration_short_human_form(value: timedelta | float, expected: str) -> None:
    assert format_duration(value) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(59.96, "1m00s"), (-5.0, "-5.0s"), (-125, "-2m05s"), (700.0, "11m40s"), (3 * 86400 + 4 * 3600, "3d04h")],
)
def test_format_duration_is_the_one_form_for_every_figure(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected
