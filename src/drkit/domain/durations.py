"""Durations as operators write them: `90s`, `5m`, `1h`, `7d`, `2w`, combinations like `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """Parse `5m`, `1h30m`, `7d`; a bare number means seconds. Raises ValueError otherwise."""
    raw = text.strip().lower()
    if raw.isdigit():
        return timedelta(seconds=int(raw))
    pos = 0
    total = 0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ValueError(f"bad duration {text!r}: use a number with a unit, like 90s, 5m, 1h, 7d")
    return timedelta(seconds=total)


def format_duration(delta: timedelta | float) -> str:
    """drkit's one way to show a duration: `1.2s`, `3m04s`, `2h05m`, `3d04h` (`-` before a
    negative one). The same form `parse_duration` reads (but for the tenths of a second)."""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
