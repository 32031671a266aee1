"""The figures of bench/incremental.py: each major's ratios against their targets, the table
printed at the end, and the JSON results."""

from __future__ import annotations

import statistics
from typing import Any

from bench.report import MEMORY_TARGET, Ratio, Step, human_bytes


def _median(steps: dict[str, list[Step]], key: str, what: str = "seconds") -> float | None:
    values = [getattr(s, what) for s in steps.get(key, []) if getattr(s, what) is not None]
    return statistics.median(values) if values else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def incremental_ratios(major: int, steps: dict[str, list[Step]]) -> list[Ratio]:
    """The targets of issue 19, for one major (medians over days and rounds)."""
    native = major >= 17
    cap = 0.10 if native else 0.20  # below 17: within 2x of PostgreSQL 17+'s 10 %
    m = lambda key, what="seconds": _median(steps, key, what)  # noqa: E731
    rows = [
        Ratio(
            "incr_time_vs_full",
            f"drkit incremental s / drkit full s (a day's {('native' if native else 'delta')} incremental)",
            _div(m("drkit_incr"), m("drkit_full")),
            cap,
            False,
        ),
        Ratio(
            "incr_bytes_vs_full",
            "drkit incremental stored bytes / drkit full stored bytes",
            _div(m("drkit_incr", "bytes"), m("drkit_full", "bytes")),
            cap,
            False,
        ),
        Ratio(
            "chain_restore_vs_full_restore",
            "drkit restore of full + incrementals s / drkit restore of the full s (to promoted, stopped)",
            _div(m("drkit_restore_chain"), m("drkit_restore_full")),
            1.3,
            False,
        ),
    ]
    if not native and "pgbackrest_restore_full" in steps:
        rows += [
            Ratio(
                "restore_to_promoted_vs_pgbackrest",
                "pgBackRest (restore + start + promote + stop) s / drkit restore s, full backup",
                _div(m("pgbackrest_restore_full"), m("drkit_restore_full")),
                1.5,
                True,
            ),
            Ratio(
                "chain_restore_vs_pgbackrest_incr",
                "pgBackRest restore of full + incr s / drkit restore of full + incrementals s",
                _div(m("pgbackrest_restore_incr"), m("drkit_restore_chain")),
                1.5,
                True,
            ),
            Ratio(
                "full_backup_vs_pgbackrest",
                "pgBackRest full s / drkit full s (today's 1.1-1.5)",
                _div(m("pgbackrest_full_repo1"), m("drkit_full")),
                1.1,
                True,
            ),
            Ratio(
                "block_vs_file_bytes",
                "drkit file-level delta bytes / drkit block delta bytes (the choice below 17)",
                _div(m("drkit_file_incr", "bytes"), m("drkit_incr", "bytes")),
                1.0,
                True,
            ),
            Ratio(
                "incr_bytes_vs_pgbackrest_incr",
                "pgBackRest incr stored bytes / drkit incremental stored bytes",
                _div(m("pgbackrest_incr", "bytes"), m("drkit_incr", "bytes")),
                1.0,
                True,
            ),
        ]
    drkit = [s for k, v in steps.items() if k.startswith("drkit_") for s in v]
    peak = max((s.max_rss or 0) for s in drkit) if drkit else 0
    rows.append(
        Ratio(
            "drkit_peak_memory_mb",
            "highest peak RSS of any drkit step (MB)",
            peak / 1e6 or None,
            MEMORY_TARGET / 1e6,
            False,
            strict=True,
        )
    )
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
