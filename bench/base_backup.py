"""Benchmark: drkit base backup, restore and deep verify against pgBackRest and the raw tools.

Everything runs on one PostgreSQL cluster (a drkit sandbox grown to `--size-gb` of nchat-like
data), in rounds; in each round every contender runs once, in this order, from a warm page
cache and a quiet WAL archiver:

  (a) drkit backup           `drkit -c stack.yaml backup postgres`
  (d) pgBackRest backup      `pgbackrest backup --type=full` (zst level 1, process-max 2,
                             start-fast, archive-check off: the cluster archives into drkit)
  (f) pg_basebackup          `pg_basebackup -Ft -X none -c fast -D DIR`, no compression
  (b) drkit restore          the restore engine's extraction step alone (in a process), then
                             `drkit -c stack.yaml restore postgres --to DIR --target-lsn <end of
                             the backup>` (extract, start, replay, promote, stop)
  (e) pgBackRest restore     `pgbackrest restore --pg1-path DIR --type=immediate` (process-max 2),
                             then, timed apart, starting that copy until it is promoted (its WAL
                             is copied into pgBackRest's own archive beforehand, so recovery
                             uses `pgbackrest archive-get`, pgBackRest's real path)
  (g) zstd | tar             `zstd -1 -T2` of the (f) tar, then one stream `zstd -d | tar -x`
  (c) drkit verify           `drkit -c stack.yaml verify --latest --deep`

Each figure: wall seconds (the median over `--repeat` rounds), bytes stored or written, peak
memory and CPU seconds. Peak memory is the largest resident set of any process of the command's
tree (`/usr/bin/time -f %M`; the commands run under GNU time) and the sum over the tree sampled
every 0.2 s; PostgreSQL server processes (which restores start) are left out of both.

Run it as root from the repository root (PostgreSQL and pgBackRest then run as `postgres`):

    .venv/bin/python bench/base_backup.py                      # 1 GiB
    .venv/bin/python bench/base_backup.py --size-gb 0.2 --keep
    .venv/bin/python bench/base_backup.py --reuse /tmp/drkit-bench-XXXX/sandbox --repeat 3

bench/README.md says what the figures mean and which module does what.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ itself on sys.path; the benchmark's modules import each
# other as `bench.<module>`, so the repository root must be importable too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.children import internal_extract, internal_profile_backup, internal_profile_extract, profile
from bench.common import BENCH_DIR, GIB, drkit_command, log, sandbox_options
from bench.contender_drkit import drkit_backup, drkit_extract, drkit_restore, drkit_verify
from bench.contender_pgbackrest import (
    PgBackRest,
    copy_wal_to_pgbackrest,
    pgbackrest_backup,
    pgbackrest_restore,
    setup_pgbackrest,
)
from bench.contender_raw import plain_basebackup, zstd_reference
from bench.facts import machine_info, table_sizes, wal_segment_size
from bench.host import make_dir, remove, settle, warm_cache
from bench.measure import background_busy
from bench.nchat_data import BuildReport, grow
from bench.report import human_bytes, ratios, render, render_profile, results_document
from bench.session import Bench
from drkit.sandbox.stack import Sandbox, down, up

# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    size_gb: float
    reuse: Path | None
    keep: bool
    json_path: Path
    workdir: Path
    repeat: int
    skip_verify: bool
    profile: bool


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark drkit base backup/restore/verify against pgBackRest, pg_basebackup "
        "and zstd|tar on one sandbox cluster (run as root)."
    )
    parser.add_argument(
        "--size-gb", type=float, default=1.0, help="database size to build, GiB (default 1.0)"
    )
    parser.add_argument(
        "--reuse", type=Path, metavar="DIR", help="use the sandbox in DIR (kept by an earlier --keep)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the sandbox (running) and the work directory"
    )
    parser.add_argument(
        "--json",
        type=Path,
        dest="json_path",
        metavar="PATH",
        help="results file (default bench/results/base_backup-<timestamp>.json)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp"),
        help="parent of the work directory; the postgres user must be able to traverse it",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; every time is the median (default 1)")
    parser.add_argument("--skip-verify", action="store_true", help="leave out (c)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one instrumented backup and extraction: where drkit's time goes",
    )
    parser.add_argument("--internal-extract", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--internal-profile-backup", nargs=1, help=argparse.SUPPRESS)
    parser.add_argument("--internal-profile-extract", nargs=3, help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None) -> Options | tuple[str, list[str]]:
    """The options of a run, or (name, arguments) of the child process to be."""
    parser = _parser()
    ns = parser.parse_args(argv)
    for internal in ("internal_extract", "internal_profile_backup", "internal_profile_extract"):
        if getattr(ns, internal):
            return internal, list(getattr(ns, internal))
    if ns.repeat < 1:
        parser.error("--repeat must be 1 or more")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Options(
        size_gb=ns.size_gb,
        reuse=ns.reuse.resolve() if ns.reuse else None,
        keep=ns.keep,
        json_path=ns.json_path or BENCH_DIR / "results" / f"base_backup-{stamp}.json",
        workdir=ns.workdir.resolve(),
        repeat=ns.repeat,
        skip_verify=ns.skip_verify,
        profile=ns.profile,
    )


# --------------------------------------------------------------------------------------------
# The sandbox and its data
# --------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    sandbox_dir: Path
    box: Sandbox | None = None
    started_here: bool = False  # we started its PostgreSQL: stop it at the end
    build: BuildReport | None = None


def start_sandbox(opts: Options, prepared: Prepared) -> Sandbox:
    directory = prepared.sandbox_dir
    if opts.reuse:
        was_running = Sandbox.load(directory).postgres_runtime().is_running()
        log(f"reusing the sandbox in {directory}")
        prepared.started_here = not was_running
        box = up(directory)
    else:
        log(f"starting a sandbox in {directory}")
        prepared.started_here = True
        box = up(directory, sandbox_options())
    prepared.box = box
    return box


def build_data(opts: Options, box: Sandbox) -> BuildReport | None:
    target = int(opts.size_gb * GIB)
    with psycopg.connect(box.dsn) as conn:
        row = conn.execute("select pg_database_size(current_database())").fetchone()
    size = int(row[0]) if row else 0
    if size < target * 0.9:
        log(f"growing nchat from {human_bytes(size)} to {human_bytes(target)}")
        build = grow(box.dsn, target, log=log)
        log(
            f"built in {build.seconds:.0f} s: {build.messages_added:,} messages, "
            f"database {human_bytes(build.final_bytes)} ({build.within:.1%} of the target)"
        )
        return build
    if size > target * 1.1:
        log(f"warning: the reused database holds {human_bytes(size)}, more than the target")
    return None


# --------------------------------------------------------------------------------------------
# One round, every round, the report
# --------------------------------------------------------------------------------------------


def one_round(bench: Bench, pgbr: PgBackRest, *, verify: bool) -> None:
    """Every contender once, in this order, each from a settled archiver and a warm cache."""
    log("(a) drkit backup")
    settle(bench.box)
    backup = drkit_backup(bench)
    log("(d) pgBackRest backup")
    settle(bench.box)
    pgbr_backup = pgbackrest_backup(bench, pgbr)
    copy_wal_to_pgbackrest(bench, pgbr, pgbr_backup)
    log("(f) pg_basebackup, plain tar")
    settle(bench.box)
    tar = plain_basebackup(bench)
    log("(b) drkit restore")
    settle(bench.box)
    drkit_extract(bench, backup["backup_id"])
    settle(bench.box)
    drkit_restore(bench, backup["postgres"]["stop_lsn"])
    log("(e) pgBackRest restore")
    settle(bench.box)
    pgbackrest_restore(bench, pgbr, str(pgbr_backup["label"]))
    log("(g) zstd | tar")
    settle(bench.box)
    zstd_reference(bench, tar)
    if verify:
        log("(c) drkit verify --latest --deep")
        settle(bench.box)
        drkit_verify(bench)


def open_bench(opts: Options, prepared: Prepared, work: Path) -> Bench:
    """The sandbox up and grown to the target size; a Bench on it."""
    box = start_sandbox(opts, prepared)
    prepared.build = build_data(opts, box)
    bench = Bench(box, work)
    make_dir(bench.restores)
    return bench


def get_ready(bench: Bench) -> tuple[dict[str, Any], dict[str, Any], PgBackRest]:
    """The database's and the machine's facts; a quiet archiver, a warm cache, pgBackRest's
    stanza; how busy the machine is while the benchmark does nothing."""
    box = bench.box
    db = table_sizes(box.dsn)
    machine = machine_info(box.dsn)
    bench.segment_size = wal_segment_size(box.dsn)
    log(f"database {human_bytes(db['database_bytes'])}; settling the archive, warming the cache")
    settle(box)
    warm_cache(Path(bench.pg["data_dir"]))
    pgbr = setup_pgbackrest(bench)
    machine["background_busy_before_rounds"] = idle = background_busy()
    if idle > 0.15:
        log(f"warning: {idle:.0%} of the CPUs are busy with other work; the figures will be noisy")
    return db, machine, pgbr


def database_facts(opts: Options, prepared: Prepared, db: dict[str, Any]) -> dict[str, Any]:
    return {
        **db,
        "sandbox": str(prepared.sandbox_dir),
        "target_bytes": int(opts.size_gb * GIB),
        "within_10_percent": abs(db["database_bytes"] / (opts.size_gb * GIB) - 1) <= 0.1,
        "reused": opts.reuse is not None,
        "build": asdict(prepared.build) if prepared.build else None,
    }


def report(
    opts: Options,
    prepared: Prepared,
    bench: Bench,
    facts: tuple[datetime, dict[str, Any], dict[str, Any]],
    prof: dict[str, Any] | None,
) -> None:
    """Print the table (and the profile), write the JSON results."""
    started, db, machine = facts
    steps = bench.summary()
    rows = ratios(steps)
    print()
    print(render(steps, rows, db, opts.repeat))
    if prof:
        print()
        print(render_profile(prof))
    print()
    result = results_document(
        started=started,
        finished=datetime.now(UTC),
        rounds=opts.repeat,
        machine=machine,
        database=database_facts(opts, prepared, db),
        steps=steps,
        rows=rows,
        profile=prof,
        samples=bench.samples,
    )
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(result, indent=2) + "\n")
    log(f"results written to {opts.json_path}")


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def run_all(opts: Options) -> int:
    if os.geteuid() != 0:
        print("run this as root: PostgreSQL and pgBackRest run as the postgres user", file=sys.stderr)
        return 2
    opts.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="drkit-bench-", dir=opts.workdir))
    os.chmod(work, 0o755)
    started = datetime.now(UTC)
    prepared = Prepared(opts.reuse or work / "sandbox")
    bench: Bench | None = None
    ok = False
    try:
        bench = open_bench(opts, prepared, work)
        db, machine, pgbr = get_ready(bench)
        for n in range(opts.repeat):
            if opts.repeat > 1:
                log(f"round {n + 1} of {opts.repeat}")
            one_round(bench, pgbr, verify=not opts.skip_verify)
        prof = profile(bench) if opts.profile else None
        report(opts, prepared, bench, (started, db, machine), prof)
        ok = True
    finally:
        cleanup(opts, work, prepared, bench)
    return 0 if ok else 1


def cleanup(opts: Options, work: Path, prepared: Prepared, bench: Bench | None) -> None:
    if bench is not None:
        bench.stop_servers()
    where = prepared.sandbox_dir
    if opts.keep:
        log(f"kept: {work} (sandbox {where}, still running)")
        log(f"  reuse it: {sys.executable} {Path(__file__)} --reuse {where}")
        log(f"  stop it:  {' '.join(drkit_command())} sandbox down --dir {where}")
        return
    if bench is not None and opts.reuse:
        bench.cleanup_backups()  # the reused sandbox keeps its repository as it was
    ours = prepared.started_here or not opts.reuse
    if ours and (where / "sandbox.json").exists():
        try:
            down(where)
        except Exception as exc:  # cleanup goes on
            log(f"sandbox down failed: {exc}")
    remove(work)
    log("cleaned up")


def main(argv: list[str] | None = None) -> int:
    parsed = parse_args(argv)
    if isinstance(parsed, tuple):
        name, args = parsed
        internals: dict[str, Callable[..., None]] = {
            "internal_extract": internal_extract,
            "internal_profile_backup": internal_profile_backup,
            "internal_profile_extract": internal_profile_extract,
        }
        internals[name](*args)
        return 0
    return run_all(parsed)


if __name__ == "__main__":
    sys.exit(main())
