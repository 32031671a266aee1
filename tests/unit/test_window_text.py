"""How `backups list` writes a recovery window: a continuous window whose two ends fall in
the same second is still a window (milliseconds tell them apart), never "at" one moment
(that read as a single point; test_backups_windows failed on it once the WAL was archived
within the second the backup finished)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drkit.cli.backup_cmds import _window_text
from drkit.engines.ops.windows import RecoveryWindow

T = datetime(2026, 12, 6, 20, 6, 1, 120_000, tzinfo=UTC)


def window(latest: datetime, *, continuous: bool = True, points: int = 1) -> RecoveryWindow:
    return RecoveryWindow("postgres", T, latest, continuous, points, "")


def test_a_continuous_window_within_one_second_is_written_with_milliseconds() -> None:
    text = _window_text(window(T + timedelta(milliseconds=700)), UTC)
    assert text == "from 2026-12-06 20:06:01.120 to 20:06:01.820"


def test_one_moment_is_at_and_longer_windows_keep_whole_seconds() -> None:
    assert _window_text(window(T), UTC) == "at 2026-12-06 20:06:01"
    assert _window_text(window(T + timedelta(seconds=5)), UTC) == "from 2026-12-06 20:06:01 to 20:06:06"
    points = window(T + timedelta(hours=1), continuous=False, points=2)
    assert _window_text(points, UTC) == "at 2 points, from 2026-12-06 20:06:01 to 21:06:01"
