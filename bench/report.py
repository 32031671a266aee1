"""The figures and the report: one Step per measured command, the summary over rounds, the
ratios against their targets, the table printed at the end and the JSON results file."""

from __future__ import annotations

import statistics
import sys
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from bench.measure import SAMPLE_INTERVAL, Run

MEMORY_TARGET = 200 * 10**6  # bytes: "200 MB"


# Results
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    key: str
    label: str
    command: str
    seconds: float
    bytes: int | None = None  # stored (backups) or written (restores)
    bytes_what: str = ""
    max_rss: int | None = None
    tree_rss: int | None = None
    cpu_seconds: float | None = None
    machine_busy_seconds: float | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str, label: str, run: Run, **kw: Any) -> Step:
        return cls(
            key=key,
            label=label,
            command=" ".join(run.argv),
            seconds=run.seconds,
            max_rss=run.max_rss,
            tree_rss=run.tree_rss,
            cpu_seconds=run.cpu_seconds,
            machine_busy_seconds=run.machine_busy_seconds,
            **kw,
        )


def summarize(samples: list[Step]) -> Step:
    """One figure per step: the median time (the round nearest it gives the details), the
    highest memory of any round."""
    times = [s.seconds for s in samples]
    median = statistics.median(times)
    chosen = min(samples, key=lambda s: abs(s.seconds - median))
    return replace(
        chosen,
        seconds=median,
        max_rss=max((s.max_rss or 0) for s in samples) or None,
        tree_rss=max((s.tree_rss or 0) for s in samples) or None,
        details={**chosen.details, "rounds_s": times, "min_s": min(times), "max_s": max(times)},
    )


@dataclass(frozen=True)
class Ratio:
    name: str
    description: str
    value: float | None
    target: float
    higher_is_better: bool
    strict: bool = False  # "<" rather than "<=" (or ">" rather than ">=")

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        if self.higher_is_better:
            return self.value > self.target if self.strict else self.value >= self.target
        return self.value < self.target if self.strict else self.value <= self.target

    @property
    def target_text(self) -> str:
        op = (">" if self.higher_is_better else "<") + ("" if self.strict else "=")
        return f"{op} {self.target:g}"


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


# --------------------------------------------------------------------------------------------
# Ratios
# --------------------------------------------------------------------------------------------


def _seconds(steps: dict[str, Step], key: str) -> float | None:
    return steps[key].seconds if key in steps else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _to_service(steps: dict[str, Step]) -> tuple[float | None, float | None]:
    """(pgBackRest restore + start until promoted, drkit restore until promoted), seconds."""
    until_promoted = None
    if "drkit_restore" in steps:
        until_promoted = steps["drkit_restore"].details.get("phases", {}).get("until_promoted_s")
    pgbr_full = None
    if "pgbackrest_restore" in steps and "pgbackrest_start" in steps:
        pgbr_full = steps["pgbackrest_restore"].seconds + steps["pgbackrest_start"].seconds
    return pgbr_full, until_promoted


def _speed_ratios(steps: dict[str, Step]) -> list[Ratio]:
    pgbr_full, until_promoted = _to_service(steps)
    return [
        Ratio(
            "backup_speed",
            "pgBackRest backup s / drkit backup s",
            _div(_seconds(steps, "pgbackrest_backup"), _seconds(steps, "drkit_backup")),
            2.0,
            True,
        ),
        Ratio(
            "restore_speed",
            "pgBackRest restore s / drkit restore s (whole commands: drkit's also starts, "
            "replays, promotes and stops the server; pgBackRest's only writes files)",
            _div(_seconds(steps, "pgbackrest_restore"), _seconds(steps, "drkit_restore")),
            1.5,
            True,
        ),
        Ratio(
            "restore_speed_files",
            "pgBackRest restore s / drkit extraction s (files only: like for like)",
            _div(_seconds(steps, "pgbackrest_restore"), _seconds(steps, "drkit_extract")),
            1.5,
            True,
        ),
        Ratio(
            "restore_speed_to_service",
            "(pgBackRest restore + start until promoted) s / drkit restore until promoted s "
            "(a server answering: like for like)",
            _div(pgbr_full, until_promoted),
            1.5,
            True,
        ),
    ]


def _size_and_memory_ratios(steps: dict[str, Step]) -> list[Ratio]:
    drkit = [s for k, s in steps.items() if k.startswith("drkit_")]
    drkit_mem = max((s.max_rss or 0) for s in drkit) if drkit else 0
    drkit_tree = max((s.tree_rss or 0) for s in drkit) if drkit else 0
    size_drkit = steps["drkit_backup"].bytes if "drkit_backup" in steps else None
    size_pgbr = steps["pgbackrest_backup"].bytes if "pgbackrest_backup" in steps else None
    return [
        Ratio(
            "stored_size",
            "drkit stored bytes / pgBackRest stored bytes",
            _div(size_drkit, size_pgbr),
            1.0,
            False,
        ),
        Ratio(
            "drkit_peak_memory_mb",
            "drkit peak RSS, largest process, any drkit step (MB)",
            drkit_mem / 1e6 if drkit_mem else None,
            MEMORY_TARGET / 1e6,
            False,
            strict=True,
        ),
        Ratio(
            "drkit_peak_tree_memory_mb",
            "drkit peak RSS, its process tree summed, any drkit step (MB)",
            drkit_tree / 1e6 if drkit_tree else None,
            MEMORY_TARGET / 1e6,
            False,
            strict=True,
        ),
    ]


def ratios(steps: dict[str, Step]) -> list[Ratio]:
    return [*_speed_ratios(steps), *_size_and_memory_ratios(steps)]


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def _step_lines(s: Step) -> list[str]:
    """A step's row, then its rounds, its restore phases and its in-process extraction time."""
    size = f"{s.bytes:,}" if s.bytes is not None else "-"
    cpu = f"{s.cpu_seconds:.1f}" if s.cpu_seconds is not None else "-"
    busy = f"{s.machine_busy_seconds:.1f}" if s.machine_busy_seconds is not None else "-"
    lines = [
        f"{s.label:<46} {s.seconds:>8.2f} {size:>15} {s.bytes_what:<8} "
        f"{human_bytes(s.max_rss):>10} {human_bytes(s.tree_rss):>10} {cpu:>6} {busy:>6}"
    ]
    if len(s.details.get("rounds_s", [])) > 1:
        lines.append(f"{'':<4}rounds: {', '.join(f'{t:.2f}' for t in s.details['rounds_s'])}")
    phases = s.details.get("phases")
    if phases and "before_server_start_s" in phases:
        shown = ", ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in phases.items() if k.endswith("_s"))
        lines.append(f"{'':<4}phases (s): {shown}; WAL files restored {phases['wal_files_restored']}")
    inner = s.details.get("extract_seconds_in_process")
    if inner is not None:
        lines.append(f"{'':<4}extraction itself, inside the process: {inner:.2f} s")
    return lines


def _ratio_line(r: Ratio) -> str:
    value = f"{r.value:.3f}" if r.value is not None else "-"
    verdict = {True: "met", False: "MISSED", None: "n/a"}[r.met]
    return f"{r.name:<26} {value:>7} {r.target_text:>7}  {verdict:<7}  {r.description}"


def render(steps: dict[str, Step], rows: list[Ratio], db: dict[str, Any], rounds: int) -> str:
    lines = [
        f"database {human_bytes(db['database_bytes'])} ({db['database_bytes']:,} bytes), "
        f"cluster {human_bytes(db['cluster_bytes'])}; seconds are the median of {rounds} round(s)",
        "",
        f"{'step':<46} {'seconds':>8} {'bytes':>15} {'':<8} {'peak RSS':>10} {'tree RSS':>10} "
        f"{'CPU s':>6} {'busy s':>6}",
    ]
    for s in steps.values():
        lines += _step_lines(s)
    lines += ["", f"{'ratio':<26} {'value':>7} {'target':>7}  {'verdict':<7}  meaning"]
    lines += [_ratio_line(r) for r in rows]
    return "\n".join(lines)


def render_profile(prof: dict[str, Any]) -> str:
    lines = ["where drkit's time goes (one extra, instrumented run; worker times summed over threads)"]
    for what, data in prof.items():
        lines.append(f"  {what}: {data['wall_s']:.2f} s in the engine")
        for name, t in data["timers"].items():
            lines.append(f"    {name:<52} {t['seconds']:7.2f} s  x{t['calls']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The JSON results
# --------------------------------------------------------------------------------------------

METHOD = {
    "cache": "warm for every step: the data directory is read once before the first "
    "step, each repository right after it is written; caches are never dropped",
    "between_steps": "wait until the WAL archiver has nothing left to push, then sync",
    "compression": "zstd level 1 for drkit and pgBackRest; 2 workers / process-max 2",
    "seconds": "median over the rounds (rounds_s in details)",
    "peak_memory": "max_rss: wait4 ru_maxrss of the command (largest process of its "
    "tree, as /usr/bin/time %M); tree_rss: sampled sum over the tree every "
    f"{SAMPLE_INTERVAL} s; PostgreSQL server processes excluded; highest over rounds",
    "machine_busy_seconds": "CPU seconds the whole machine was busy during the step "
    "(every process, PostgreSQL's included): much more than the step's own CPU "
    "means something else was running",
}


def results_document(
    *,
    started: datetime,
    finished: datetime,
    rounds: int,
    machine: dict[str, Any],
    database: dict[str, Any],
    steps: dict[str, Step],
    rows: list[Ratio],
    profile: dict[str, Any] | None,
    samples: dict[str, list[Step]],
) -> dict[str, Any]:
    """What the results file holds (bench/README.md, "The JSON")."""
    return {
        "benchmark": "base_backup",
        "format": 1,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "command": [sys.executable, *sys.argv],
        "rounds": rounds,
        "machine": machine,
        "database": database,
        "method": METHOD,
        "steps": {k: asdict(s) for k, s in steps.items()},
        "ratios": {
            r.name: {"value": r.value, "target": r.target_text, "met": r.met, "description": r.description}
            for r in rows
        },
        "profile": profile,
        "samples": {k: [asdict(s) for s in v] for k, v in samples.items()},
    }
