"""Sizes as people read them: `512 B`, `16.8 MiB`, `1.2 GiB` (powers of 1024, as `du -h`)."""

from __future__ import annotations


def format_size(n: int | float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"
