"""drkit as a contender: (a) its backup, (b) its restore engine's extraction alone and its whole
restore to the end of the backup, (c) its deep verify; each run as drkit's own command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.common import SCRIPT
from bench.facts import restore_phases
from bench.host import dir_size, remove
from bench.measure import CommandFailed, parse_json_output, run_measured
from bench.report import Step
from bench.session import Bench


# (a) ----------------------------------------------------------------------------------------
def drkit_backup(bench: Bench) -> dict[str, Any]:
    run = run_measured(bench.drkit("backup", "postgres"))
    result = parse_json_output(run.stdout)[0]
    directory = (
        Path(bench.box.dir) / "repo" / result["stack"] / result["service"] / "backups" / result["backup_id"]
    )
    bench.made_backups.append(directory)
    bench.add(
        Step.of(
            "drkit_backup",
            "(a) drkit backup",
            run,
            bytes=dir_size(directory),
            bytes_what="stored",
            notes="pg_basebackup tar stream -> 16 MiB parts, zstd -1 in 2 threads, "
            "SHA-256, fsync; includes waiting for the last WAL segment to be archived "
            "and the row counts",
            details={
                "backup_id": result["backup_id"],
                "raw_bytes": sum(int(f["raw_size"]) for f in result["files"]),
                "files": len(result["files"]),
                "drkit_reported_seconds": result.get("seconds"),
                "start_lsn": result["postgres"]["start_lsn"],
                "stop_lsn": result["postgres"]["stop_lsn"],
            },
        )
    )
    return dict(result)


# (b) ----------------------------------------------------------------------------------------
def drkit_extract(bench: Bench, backup_id: str) -> None:
    dest = bench.restores / "drkit-extract"
    argv = [
        sys.executable,
        str(SCRIPT),
        "--internal-extract",
        str(bench.box.config_path),
        backup_id,
        str(dest),
    ]
    run = run_measured(argv)
    inner = parse_json_output(run.stdout)
    bench.add(
        Step.of(
            "drkit_extract",
            "(b) drkit restore: extraction only",
            run,
            bytes=dir_size(dest),
            bytes_what="written",
            notes="the restore engine's extract step (parts -> files, chown) in a process "
            "of its own; seconds = the whole process",
            details={"extract_seconds_in_process": inner["seconds"]},
        )
    )
    remove(dest)


def drkit_restore(bench: Bench, stop_lsn: str) -> None:
    dest = bench.restores / "drkit-restore"
    run = run_measured(bench.drkit("restore", "postgres", "--to", str(dest), "--target-lsn", stop_lsn))
    outcome = parse_json_output(run.stdout)
    logs = [dest / "log" / "drkit-restore.log", dest.parent / f"{dest.name}.log"]
    phases = restore_phases(logs, run.started_at, run.started_at + run.seconds)
    bench.add(
        Step.of(
            "drkit_restore",
            "(b) drkit restore (to end of backup)",
            run,
            bytes=dir_size(dest),
            bytes_what="data dir",
            notes="extract + configure + start + WAL replay + promote + stop",
            details={
                "phases": phases,
                "reached_lsn": outcome.get("reached_lsn"),
                "drkit_reported_seconds": outcome.get("seconds"),
            },
        )
    )
    remove(dest)
    remove(dest.parent / f"{dest.name}.log")


# (c) ----------------------------------------------------------------------------------------
def drkit_verify(bench: Bench) -> None:
    run = run_measured(bench.drkit("verify", "--latest", "--deep"), check=False)
    report = parse_json_output(run.stdout)
    if run.returncode != 0 or not report.get("ok"):
        raise CommandFailed(f"drkit verify failed ({run.returncode}): {run.stdout[-2000:]}")
    bench.add(
        Step.of(
            "drkit_verify_deep",
            "(c) drkit verify --latest --deep",
            run,
            notes="hash every part, check the WAL chain, restore into a throwaway "
            "instance, compare row counts",
            details={"results": report.get("results"), "drkit_reported_seconds": report.get("seconds")},
        )
    )
