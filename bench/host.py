"""Files and the running cluster: sizes, ownership, a warm page cache, a quiet WAL archiver,
WAL segment names, and waiting for a restored copy to be promoted."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import time
from pathlib import Path

import psycopg

from bench.common import MIB, PG_USER, log
from drkit.sandbox.stack import Sandbox


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


def chown_postgres(path: Path) -> None:
    entry = pwd.getpwnam(PG_USER)
    if not path.is_dir():
        os.lchown(path, entry.pw_uid, entry.pw_gid)
        return
    for dirpath, dirs, files in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


def make_dir(path: Path, mode: int = 0o755, *, postgres: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if postgres and os.geteuid() == 0:
        chown_postgres(path)
    return path


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _archiver_behind(box: Sandbox, timeout: float, waiting: int) -> RuntimeError:
    with psycopg.connect(box.dsn, autocommit=True) as conn:
        row = conn.execute(
            "select failed_count, last_failed_wal, last_archived_wal from pg_stat_archiver"
        ).fetchone()
    return RuntimeError(
        f"archiving did not catch up in {timeout:.0f}s ({waiting} segments waiting; pg_stat_archiver: {row})"
    )


def settle(box: Sandbox, timeout: float = 1800) -> None:
    """Wait until the archiver has nothing left to push, then flush dirty pages to disk: no
    step pays for the previous one's background work."""
    status_dir = Path(box.state["services"]["postgres"]["data_dir"]) / "pg_wal" / "archive_status"
    deadline = time.monotonic() + timeout
    told = False
    while True:
        ready = [p for p in status_dir.iterdir() if p.name.endswith(".ready")]
        if not ready:
            break
        if time.monotonic() > deadline:
            raise _archiver_behind(box, timeout, len(ready))
        if not told and len(ready) > 2:
            log(f"  waiting for the WAL archiver ({len(ready)} segments to push)")
            told = True
        time.sleep(0.5)
    os.sync()


def warm_cache(path: Path) -> int:
    """Read every file once so every contender starts from the same warm page cache."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb", buffering=0) as fh:
                    while chunk := fh.read(MIB):
                        total += len(chunk)
            except OSError:
                continue
    return total


def segment_names(first: str, last: str, segment_size: int) -> list[str]:
    """WAL segment file names from `first` to `last` inclusive (one timeline)."""
    per_id = 0x100000000 // segment_size
    tli = first[:8]
    start = int(first[8:16], 16) * per_id + int(first[16:], 16)
    stop = int(last[8:16], 16) * per_id + int(last[16:], 16)
    return [f"{tli}{n // per_id:08X}{n % per_id:08X}" for n in range(start, stop + 1)]


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_promoted(dsn: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the restored copy was not promoted in time")
