"""pgBackRest as a contender: its stanza and configuration in the work directory, (d) its full
backup, the WAL its restore needs copied into its own archive (untimed), and (e) its restore,
then, timed apart, starting the restored copy until it is promoted."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import PG_USER, STANZA
from bench.facts import restore_phases
from bench.host import (
    chown_postgres,
    dir_size,
    free_loopback_port,
    make_dir,
    remove,
    segment_names,
    settle,
    wait_promoted,
)
from bench.measure import parse_json_output, run_measured, run_quiet
from bench.report import Step
from bench.session import Bench


@dataclass(frozen=True)
class PgBackRest:
    root: Path
    data_dir: str
    port: int
    socket_dir: str
    repos: int = 1  # repository N holds its own chain (bench/incremental.py: 1 incr, 2 diff)
    pushed: set[str] = field(default_factory=set)  # WAL segments copied in (copy_wal_to_pgbackrest)

    @property
    def config(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    def repo_path(self, n: int) -> Path:
        return self.repo if n == 1 else self.root / f"repo{n}"

    def argv(self, *args: str) -> list[str]:
        return ["pgbackrest", f"--config={self.config}", f"--stanza={STANZA}", *args]

    def setup(self) -> None:
        make_dir(self.root)
        for sub in ("repo", "log", "lock", "spool", "wal-in"):
            make_dir(self.root / sub, 0o750)
        more = ""
        for n in range(2, self.repos + 1):
            make_dir(self.repo_path(n), 0o750)
            more += f"repo{n}-path={self.repo_path(n)}\nrepo{n}-retention-full=99\n"
        self.config.write_text(
            "[global]\n"
            f"repo1-path={self.repo}\n"
            "repo1-retention-full=99\n" + more + ""
            f"log-path={self.root / 'log'}\n"
            f"lock-path={self.root / 'lock'}\n"
            f"spool-path={self.root / 'spool'}\n"
            "log-level-console=warn\n"
            "log-level-file=info\n"
            "compress-type=zst\n"
            "compress-level=1\n"
            "process-max=2\n"
            "start-fast=y\n"
            # The cluster archives into drkit; the WAL a restore needs is copied in apart.
            "archive-check=n\n"
            "\n"
            f"[{STANZA}]\n"
            f"pg1-path={self.data_dir}\n"
            f"pg1-port={self.port}\n"
            f"pg1-socket-path={self.socket_dir}\n"
            f"pg1-user={PG_USER}\n"
        )
        chown_postgres(self.root)
        run_quiet(self.argv("stanza-create"), user=PG_USER)

    def latest(self, repo: int = 1) -> dict[str, Any]:
        info = parse_json_output(
            run_quiet(self.argv("--output=json", f"--repo={repo}", "info"), user=PG_USER)
        )
        backups = info[0]["backup"]
        if not backups:
            raise RuntimeError("pgBackRest lists no backup")
        return dict(backups[-1])


def setup_pgbackrest(bench: Bench, repos: int = 1) -> PgBackRest:
    data_dir = bench.pg["data_dir"]
    pgbr = PgBackRest(
        bench.work / "pgbackrest", data_dir, int(bench.pg["port"]), str(Path(data_dir).parent), repos
    )
    pgbr.setup()
    return pgbr


def pgbackrest_backup(bench: Bench, pgbr: PgBackRest) -> dict[str, Any]:
    run = run_measured(pgbr.argv("--type=full", "backup"), user=PG_USER, cwd=pgbr.root)
    latest = pgbr.latest()
    label = str(latest["label"])
    bench.add(
        Step.of(
            "pgbackrest_backup",
            "(d) pgBackRest backup --type=full",
            run,
            bytes=dir_size(pgbr.repo / "backup" / STANZA / label),
            bytes_what="stored",
            notes="zst level 1, process-max 2, start-fast; archive-check off (it does not "
            "wait for WAL to reach an archive)",
            details={"label": label, "info": latest.get("info"), "archive": latest.get("archive")},
        )
    )
    return latest


def copy_wal_to_pgbackrest(bench: Bench, pgbr: PgBackRest, backup: dict[str, Any]) -> int:
    """Untimed: the WAL the pgBackRest backup needs, from drkit's archive into pgBackRest's
    (`pgbackrest archive-push`, into every repository), so its restore recovers the way
    pgBackRest does."""
    settle(bench.box)  # the backup's last segment is in drkit's archive
    names = segment_names(backup["archive"]["start"], backup["archive"]["stop"], bench.segment_size)
    spool = pgbr.root / "wal-in"
    for name in names:
        if name in pgbr.pushed:
            continue
        pgbr.pushed.add(name)
        path = spool / name
        run_quiet(bench.drkit("wal-fetch", name, str(path)))
        chown_postgres(path)
        run_quiet(pgbr.argv("archive-push", str(path)), user=PG_USER)
        path.unlink()
    return len(names)


def pgbackrest_restore(bench: Bench, pgbr: PgBackRest, label: str) -> None:
    dest = make_dir(bench.restores / "pgbackrest-restore", 0o700)
    run = run_measured(
        pgbr.argv(
            f"--pg1-path={dest}",
            f"--set={label}",
            "--process-max=2",
            "--type=immediate",
            "--target-action=promote",
            "--archive-mode=off",
            "restore",
        ),
        user=PG_USER,
        cwd=pgbr.root,
    )
    bench.add(
        Step.of(
            "pgbackrest_restore",
            "(e) pgBackRest restore",
            run,
            bytes=dir_size(dest),
            bytes_what="data dir",
            notes="files and recovery settings only: pgBackRest does not start the server",
        )
    )
    start_copy(bench, dest)
    remove(dest)


def _on_loopback(dest: Path) -> tuple[int, str | None]:
    """The restored copy set to listen on a free loopback port (and no socket); that port, and
    the restore_command pgBackRest wrote."""
    auto_conf = (dest / "postgresql.auto.conf").read_text()
    fetch = re.search(r"^restore_command = (.*)$", auto_conf, re.MULTILINE)
    port = free_loopback_port()
    with open(dest / "postgresql.auto.conf", "a") as conf:
        conf.write(f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n")
    return port, fetch.group(1) if fetch else None


def start_copy(bench: Bench, dest: Path, *, record: bool = True) -> Step:
    """Start the restored copy and replay to consistency, as drkit's restore does (timed
    apart), until it is promoted; then (`record`: the step recorded) stop it."""
    port, fetch = _on_loopback(dest)
    log_file = bench.restores / "pgbackrest-restore.log"
    started = time.perf_counter()
    bench.running.append(dest)
    start = run_measured(
        [bench.pg_tool("pg_ctl"), "start", "-D", str(dest), "-l", str(log_file), "-w", "-t", "1800"],
        user=PG_USER,
        cwd=bench.restores,
    )
    wait_promoted(f"host=127.0.0.1 port={port} user={PG_USER} dbname=postgres connect_timeout=10", 1800)
    seconds = time.perf_counter() - started
    phases = restore_phases([log_file], start.started_at, start.started_at + seconds)
    step = Step(
        key="pgbackrest_start",
        label="(e) pgBackRest copy: start until promoted",
        command=" ".join(start.argv) + " ; wait until pg_is_in_recovery() is false",
        seconds=seconds,
        max_rss=start.max_rss,
        tree_rss=start.tree_rss,
        cpu_seconds=start.cpu_seconds,
        machine_busy_seconds=start.machine_busy_seconds,
        notes="recovery to immediate, promote; restore_command as pgBackRest wrote it",
        details={"phases": phases, "restore_command": fetch},
    )
    remove(log_file)
    if not record:
        return step
    bench.add(step)
    bench.stop_server(dest)
    return step
