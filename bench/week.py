"""One PostgreSQL major's week for bench/incremental.py: a full backup, then every day the
day's changes (daily_change.py) and each contender's incremental, in alternating order; then
restores from the last backup of each chain and from the full one, alternated, `repeat`
times, each to a promoted server and stopped.

Contenders, all on the same cluster and in the same run:
- drkit `backup --type incremental` (PostgreSQL 17+: pg_basebackup --incremental; below:
  drkit's block delta);
- below 17, the file-level alternative measured for the choice (drkit's delta storing a whole
  relation file when any block changed), in a repository of its own;
- below 17, pgBackRest `--type=incr` (repository 1) and `--type=diff` (repository 2).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import PG_USER, log
from bench.contender_pgbackrest import PgBackRest, copy_wal_to_pgbackrest, start_copy
from bench.daily_change import Day, one_day
from bench.facts import restore_phases
from bench.host import dir_size, make_dir, remove, settle
from bench.measure import parse_json_output, run_measured
from bench.report import Step
from bench.session import Bench

SCRIPT = Path(__file__).resolve().parent / "incremental.py"


@dataclass
class Week:
    """What one major's week made: each chain's backups and the days' changes."""

    drkit: list[dict[str, Any]] = field(default_factory=list)  # full first
    pgbr: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # repo -> sets, full first
    days: list[Day] = field(default_factory=list)


def drkit_backup(bench: Bench, kind: str, key: str, label: str, config: Path | None = None) -> dict[str, Any]:
    argv = bench.drkit("backup", "postgres", "--type", kind)
    if config is not None:
        argv[argv.index("--config") + 1] = str(config)
    run = run_measured(argv)
    made = parse_json_output(run.stdout)[0]
    root = config.parent / "file-repo" if config is not None else Path(bench.box.dir) / "repo"
    directory = root / made["stack"] / made["service"] / "backups" / made["backup_id"]
    if config is None:
        bench.made_backups.append(directory)
    details = {
        "backup_id": made["backup_id"],
        "parent": made["postgres"].get("parent"),
        "delta": made["details"].get("delta"),
        "full_because": made["details"].get("full_because"),
        "raw_bytes": sum(int(f["raw_size"]) for f in made["files"]),
    }
    bench.add(Step.of(key, label, run, bytes=dir_size(directory), bytes_what="stored", details=details))
    return dict(made)


def pgbr_backup(
    bench: Bench, pgbr: PgBackRest, kind: str, repo: int, key: str, label: str = ""
) -> dict[str, Any]:
    run = run_measured(pgbr.argv(f"--type={kind}", f"--repo={repo}", "backup"), user=PG_USER, cwd=pgbr.root)
    latest = pgbr.latest(repo)
    where = pgbr.repo_path(repo) / "backup" / "bench" / str(latest["label"])
    label = label or f"pgBackRest --type={kind} (repo {repo})"
    bench.add(
        Step.of(
            key, label, run, bytes=dir_size(where), bytes_what="stored", details={"label": latest["label"]}
        )
    )
    return latest


def file_level_config(bench: Bench) -> Path:
    """A copy of the sandbox's stack.yaml whose repository is another directory: the
    file-level chain must not build on the block-level one."""
    import yaml

    config = yaml.safe_load(bench.box.config_path.read_text())
    repo_dir = bench.work / "file-repo"
    make_dir(repo_dir)
    config["repositories"] = {"local": {"type": "fs", "path": str(repo_dir)}}
    path = bench.work / "stack-file-level.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def file_level_delta(bench: Bench, config: Path) -> None:
    """drkit's delta storing whole changed relation files: the file-level alternative."""
    run = run_measured([sys.executable, str(SCRIPT), "--internal-file-delta", str(config)])
    made = parse_json_output(run.stdout)
    directory = bench.work / "file-repo" / "sandbox" / "postgres" / "backups" / made["backup_id"]
    bench.add(
        Step.of(
            "drkit_file_incr",
            "drkit delta, file-level (the alternative)",
            run,
            bytes=dir_size(directory),
            bytes_what="stored",
            details={"backup_id": made["backup_id"], "delta": made["delta"]},
        )
    )


def quiet(box: Any, timeout: float = 900, still: float = 5.0) -> None:
    """A checkpoint once the cluster writes no WAL for `still` seconds (no autovacuum worker
    left from building the data, nothing setting hint bits): the full backups that follow
    each cover as little WAL as the other's. Something writing while one of them runs puts
    full-page images into its WAL range, which its restore then replays."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(box.dsn, autocommit=True) as conn:
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            row = conn.execute("select pg_current_wal_insert_lsn()::text").fetchone()
            now = time.monotonic()
            if row is None or row[0] != last:
                last, since = row[0] if row else None, now
            elif now - since >= still:
                break
            time.sleep(0.5)
        conn.execute("checkpoint")


def take_week(bench: Bench, pgbr: PgBackRest | None, days: int, fraction: float, mix: str = "chat") -> Week:
    week = Week()
    file_config = file_level_config(bench) if pgbr is not None else None
    log("day 0: full backups")
    quiet(bench.box)
    settle(bench.box)
    week.drkit.append(drkit_backup(bench, "base", "drkit_full", "drkit backup (full)"))
    if pgbr is not None and file_config is not None:
        for repo in (1, 2):
            settle(bench.box)
            week.pgbr[repo] = [pgbr_backup(bench, pgbr, "full", repo, f"pgbackrest_full_repo{repo}")]
        drkit_backup(bench, "base", "drkit_full_file_repo", "drkit full (file-level repository)", file_config)
    for day in range(1, days + 1):
        log(f"day {day}: {fraction:.0%} of the database changes ({mix} mix)")
        week.days.append(one_day(bench.box.dsn, day, fraction=fraction, mix=mix))
        order = ["drkit", "pgbr"] if day % 2 else ["pgbr", "drkit"]
        for who in order:
            settle(bench.box)
            if who == "drkit":
                week.drkit.append(
                    drkit_backup(bench, "incremental", "drkit_incr", "drkit backup --type incremental")
                )
                if file_config is not None:
                    settle(bench.box)
                    file_level_delta(bench, file_config)
            elif pgbr is not None:
                week.pgbr[1].append(pgbr_backup(bench, pgbr, "incr", 1, "pgbackrest_incr"))
                settle(bench.box)
                week.pgbr[2].append(pgbr_backup(bench, pgbr, "diff", 2, "pgbackrest_diff"))
    return week


def floor(bench: Bench, pgbr: PgBackRest | None) -> None:
    """An incremental with nothing changed since the last backup, by each tool: what any
    backup costs whatever its size (starting the tool, the checkpoint, the WAL switch and the
    wait for its archiving, the bookkeeping). Taken after the restores (it adds a link)."""
    settle(bench.box)
    drkit_backup(bench, "incremental", "drkit_incr_nothing_changed", "drkit incremental, nothing changed")
    if pgbr is not None:
        settle(bench.box)
        pgbr_backup(
            bench, pgbr, "incr", 1, "pgbackrest_incr_nothing_changed", "pgBackRest incr, nothing changed"
        )


# Restores ---------------------------------------------------------------------------------


def drkit_restore(bench: Bench, made: dict[str, Any], key: str, label: str) -> None:
    dest = bench.restores / "drkit"
    stop = made["postgres"]["stop_lsn"]
    argv = bench.drkit(
        "restore", "postgres", "--backup", made["backup_id"], "--to", str(dest), "--target-lsn", stop
    )
    run = run_measured(argv)
    phases = restore_phases(
        [dest / "log" / "drkit-restore.log"], run.started_at, run.started_at + run.seconds
    )
    outcome = parse_json_output(run.stdout)
    details = {
        "backup_id": made["backup_id"],
        "phases": phases,
        "drkit_reported_seconds": outcome.get("seconds"),
    }
    bench.add(Step.of(key, label, run, bytes=dir_size(dest), bytes_what="data dir", details=details))
    remove(dest)


def pgbr_restore(bench: Bench, pgbr: PgBackRest, repo: int, set_label: str, key: str, label: str) -> None:
    """pgBackRest restore, then the copy started until promoted, then stopped: one figure."""
    dest = make_dir(bench.restores / "pgbackrest-restore", 0o700)
    run = run_measured(
        pgbr.argv(
            f"--repo={repo}",
            f"--pg1-path={dest}",
            f"--set={set_label}",
            "--process-max=2",
            "--type=immediate",
            "--target-action=promote",
            "--archive-mode=off",
            "restore",
        ),
        user=PG_USER,
        cwd=pgbr.root,
    )
    start = start_copy(bench, dest, record=False)
    stopped = time.perf_counter()
    bench.stop_server(dest)
    stop_s = time.perf_counter() - stopped
    total = run.seconds + start.seconds + stop_s
    details = {
        "restore_s": run.seconds,
        "start_until_promoted_s": start.seconds,
        "stop_s": stop_s,
        "set": set_label,
    }
    step = Step.of(
        key, label, run, bytes=dir_size(dest), bytes_what="data dir", details={**details, **start.details}
    )
    step.seconds = total
    step.command += " ; pg_ctl start, wait until promoted ; pg_ctl stop -m fast"
    bench.add(step)
    remove(dest)


def restores(bench: Bench, pgbr: PgBackRest | None, week: Week, repeat: int) -> None:
    """Every restore `repeat` times, each round's order the other way round from the last:
    background noise hits both tools alike."""
    full, last = week.drkit[0], week.drkit[-1]
    steps: list[tuple[str, Callable[[], None]]] = [
        (
            "drkit",
            partial(drkit_restore, bench, last, "drkit_restore_chain", "drkit restore, full + incrementals"),
        ),
        ("drkit", partial(drkit_restore, bench, full, "drkit_restore_full", "drkit restore, full")),
    ]
    if pgbr is not None:
        for sets in week.pgbr.values():  # archive-push stores into every repository
            copy_wal_to_pgbackrest(bench, pgbr, sets[-1])
            copy_wal_to_pgbackrest(bench, pgbr, sets[0])
        chains = [
            (1, week.pgbr[1][0], "pgbackrest_restore_full", "pgBackRest restore, full"),
            (1, week.pgbr[1][-1], "pgbackrest_restore_incr", "pgBackRest restore, full + incr"),
            (2, week.pgbr[2][-1], "pgbackrest_restore_diff", "pgBackRest restore, full + diff"),
        ]
        steps += [
            ("pgbr", partial(pgbr_restore, bench, pgbr, r, str(b["label"]), k, t)) for r, b, k, t in chains
        ]
    for n in range(repeat):
        log(f"restores, round {n + 1} of {repeat}")
        for _who, step in steps if n % 2 == 0 else sorted(steps, key=lambda s: s[0] == "drkit"):
            settle(bench.box)
            step()


def internal_file_delta(config: str) -> None:
    """The file-level alternative, in its own process: drkit's delta, whole changed files."""
    from drkit.adapters.postgres.client import service_dsn
    from drkit.adapters.postgres.server import server_info
    from drkit.config.loader import load_stack
    from drkit.engines.core.commit import backup_lock
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres.delta_backup import take_delta_backup
    from drkit.engines.postgres.incremental import choose_parent

    ws = open_workspace(load_stack(config))
    service = ws.postgres()
    dsn = service_dsn(service)
    with backup_lock(ws, service.name):
        choice = choose_parent(ws, service, server_info(dsn), dsn)
        if choice.parent is None:
            raise SystemExit(f"no parent for the file-level delta: {choice.why_full}")
        result = take_delta_backup(ws, service, choice.parent, method="file")
    print(json.dumps({"backup_id": result.manifest.backup_id, "delta": result.manifest.details.get("delta")}))
