"""How figures read: durations, moments, the scale of a bar."""

from __future__ import annotations

from datetime import UTC, datetime

from drkit.domain.durations import format_duration

NO_MEASURE = "nothing measured: the run did not get as far as a healthy service"


def duration(seconds: float | None) -> str:
    """`12.3s`, `4m05s`, `2h03m` (drkit's one duration format); `-` when not measured."""
    return "-" if seconds is None else format_duration(seconds)


def moment(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def scale_max(*values: float | None) -> float:
    """The full length of a bar or an axis: a little more than the largest figure."""
    present = [v for v in values if v is not None and v > 0]
    return max(present) * 1.15 if present else 1.0


def miss_word(met: bool | None) -> str:
    if met is None:
        return ""
    return "met" if met else "MISSED"
