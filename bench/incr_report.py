"""The figures of bench/incremental.py: each major's ratios against their targets, the table
printed at the end, and the JSON results."""

from __future__ import annotations

import statistics
from typing import Any

from bench.report import MEMORY_TARGET, Ratio, Step, human_bytes

Figure = tuple[str, str]  # (step key, "seconds" or "bytes"): the median over days and rounds

# name, meaning, numerator, denominator, target, higher is better
BOTH: list[tuple[str, str, Figure, Figure, float | None, bool]] = [
    ("incr_time_vs_full", "drkit incremental s / drkit full s", ("drkit_incr", "seconds"),
     ("drkit_full", "seconds"), None, False),
    ("incr_bytes_vs_full", "drkit incremental stored bytes / drkit full stored bytes",
     ("drkit_incr", "bytes"), ("drkit_full", "bytes"), None, False),
    ("chain_restore_vs_full_restore",
     "drkit restore of full + incrementals s / drkit restore of the full s (to promoted, stopped)",
     ("drkit_restore_chain", "seconds"), ("drkit_restore_full", "seconds"), 1.3, False),
]  # fmt: skip
BELOW_17: list[tuple[str, str, Figure, Figure, float | None, bool]] = [
    ("restore_to_promoted_vs_pgbackrest",
     "pgBackRest (restore + start + promote + stop) s / drkit restore s, full backup",
     ("pgbackrest_restore_full", "seconds"), ("drkit_restore_full", "seconds"), 1.5, True),
    ("chain_restore_vs_pgbackrest_incr",
     "pgBackRest restore of full + incr s / drkit restore of full + incrementals s",
     ("pgbackrest_restore_incr", "seconds"), ("drkit_restore_chain", "seconds"), 1.5, True),
    ("full_backup_vs_pgbackrest", "pgBackRest full s / drkit full s (today's 1.1-1.5)",
     ("pgbackrest_full_repo1", "seconds"), ("drkit_full", "seconds"), 1.1, True),
    ("incr_time_vs_pgbackrest_incr", "pgBackRest incr s / drkit incremental s",
     ("pgbackrest_incr", "seconds"), ("drkit_incr", "seconds"), 1.0, True),
    ("incr_bytes_vs_pgbackrest_incr", "pgBackRest incr stored bytes / drkit incremental stored bytes",
     ("pgbackrest_incr", "bytes"), ("drkit_incr", "bytes"), 1.0, True),
    ("file_vs_block_bytes", "drkit file-level delta bytes / drkit block delta bytes (the choice below 17)",
     ("drkit_file_incr", "bytes"), ("drkit_incr", "bytes"), 1.0, True),
    ("file_vs_block_time", "drkit file-level delta s / drkit block delta s (the choice below 17)",
     ("drkit_file_incr", "seconds"), ("drkit_incr", "seconds"), 1.0, True),
]  # fmt: skip


def _median(steps: dict[str, list[Step]], figure: Figure) -> float | None:
    key, what = figure
    values = [getattr(s, what) for s in steps.get(key, []) if getattr(s, what) is not None]
    return statistics.median(values) if values else None


def incremental_ratios(major: int, steps: dict[str, list[Step]]) -> list[Ratio]:
    """The targets of issue 19, for one major (medians over days and rounds). A daily
    incremental costs <= 10 % of a full (17+); below 17, within 2x of that (<= 20 %)."""
    cap = 0.10 if major >= 17 else 0.20
    rows = []
    for name, meaning, top, bottom, target, higher in BOTH + ([] if major >= 17 else BELOW_17):
        a, b = _median(steps, top), _median(steps, bottom)
        if top[0] in steps and bottom[0] in steps:
            value = a / b if a is not None and b else None
            rows.append(Ratio(name, meaning, value, cap if target is None else target, higher))
    drkit = [s for k, v in steps.items() if k.startswith("drkit_") for s in v]
    peak = max((s.max_rss or 0) for s in drkit) if drkit else 0
    limit = MEMORY_TARGET / 1e6
    meaning = "highest peak RSS of any drkit step (MB)"
    rows.append(Ratio("drkit_peak_memory_mb", meaning, peak / 1e6 or None, limit, False, strict=True))
    return rows


def render_major(major: int, steps: dict[str, list[Step]], rows: list[Ratio], db_bytes: int) -> str:
    lines = [
        f"PostgreSQL {major}: database {human_bytes(db_bytes)}; seconds and bytes are medians (days, rounds)",
        f"{'step':<48} {'n':>2} {'median s':>9} {'min s':>7} {'max s':>7} "
        f"{'stored/written':>16} {'peak RSS':>10}",
    ]
    for samples in steps.values():
        times = [s.seconds for s in samples]
        sizes = [s.bytes for s in samples if s.bytes is not None]
        size = f"{int(statistics.median(sizes)):,}" if sizes else "-"
        rss = max((s.max_rss or 0) for s in samples)
        lines.append(
            f"{samples[0].label:<48} {len(samples):>2} {statistics.median(times):>9.2f} {min(times):>7.2f} "
            f"{max(times):>7.2f} {size:>16} {human_bytes(rss):>10}"
        )
    lines += ["", f"{'ratio':<36} {'value':>7} {'target':>7}  {'verdict':<7}  meaning"]
    for r in rows:
        value = f"{r.value:.3f}" if r.value is not None else "-"
        verdict = {True: "met", False: "MISSED", None: "n/a"}[r.met]
        lines.append(f"{r.name:<36} {value:>7} {r.target_text:>7}  {verdict:<7}  {r.description}")
    return "\n".join(lines)


def ratios_json(rows: list[Ratio]) -> dict[str, Any]:
    return {
        r.name: {"value": r.value, "target": r.target_text, "met": r.met, "description": r.description}
        for r in rows
    }
