"""The child processes base_backup.py re-invokes itself as (`--internal-extract`,
`--internal-profile-backup`, `--internal-profile-extract`), and the parent's side of the
profile: where drkit's time goes, with timers wrapped around drkit's own functions."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import SCRIPT
from bench.host import remove, settle
from bench.measure import parse_json_output, run_measured
from bench.session import Bench


def internal_extract(config: str, backup_id: str, dest: str) -> None:
    """Run the restore engine's extract step alone and time it (for (b))."""
    from drkit.config.loader import load_stack
    from drkit.engines.core.catalog import find_backup
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres.restore import _extract

    ws = open_workspace(load_stack(config))
    service = ws.postgres()
    manifest = find_backup(ws.repo, ws.stack.name, [service.name], backup_id)
    start = time.perf_counter()
    _extract(ws, service, (manifest,), Path(dest), None)
    print(json.dumps({"seconds": time.perf_counter() - start}))


class _Timers:
    """Wrap functions with timers (summed over threads) for the --profile children."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, name: str, spent: float) -> None:
        with self.lock:
            self.total[name] = self.total.get(name, 0.0) + spent
            self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        original = getattr(owner, attribute, None)
        if original is None:
            return  # drkit changed; profile what is still there
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers.add(name, time.perf_counter() - start)

        setattr(owner, attribute, timed)

    def report(self, wall: float, imports: float) -> dict[str, Any]:
        rows = sorted(self.total.items(), key=lambda kv: -kv[1])
        return {
            "wall_s": wall,
            "imports_s": imports,
            "timers": {k: {"seconds": v, "calls": self.calls[k]} for k, v in rows},
        }


def _timed_semaphore(timers: _Timers) -> type[threading.Semaphore]:
    """A Semaphore that counts the reader's waits for a free worker."""

    class TimedSemaphore(threading.Semaphore):
        def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
            start = time.perf_counter()
            got = super().acquire(blocking, timeout)
            timers.add("reader: waiting for a free worker", time.perf_counter() - start)
            return got

    return TimedSemaphore


def _timed_split(timers: _Timers, original_split: Callable[..., Any]) -> Callable[..., Any]:
    """split_into_parts with its reads timed: the reader's waits for pg_basebackup's output."""

    def split(read: Any, *args: Any, **kwargs: Any) -> Any:
        def timed_read(n: int) -> bytes:
            start = time.perf_counter()
            data: bytes = read(n)
            timers.add("reader: waiting for pg_basebackup's output", time.perf_counter() - start)
            return data

        return original_split(timed_read, *args, **kwargs)

    return split


def internal_profile_backup(config: str) -> None:
    """A drkit base backup with timers around its parts (threads' times are summed)."""
    started = time.perf_counter()
    from drkit.adapters.postgres import basebackup, tarindex
    from drkit.adapters.repository import codec, fs
    from drkit.config.loader import load_stack
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres import backup as backup_postgres
    from drkit.infra import parts

    imports = time.perf_counter() - started
    timers = _Timers()
    for attribute in ("server_info", "next_xid", "cheap_counts", "tool_version", "clean_incomplete"):
        timers.wrap(backup_postgres, attribute, f"engine: {attribute}")
    timers.wrap(backup_postgres, "stream_base_backup", "engine: stream_base_backup (all of it)")
    timers.wrap(codec.Codec, "encode", "worker: zstd compress")
    timers.wrap(backup_postgres, "sha256", "worker: sha256")
    timers.wrap(fs.FsRepository, "put", "worker: repository put (write, fsync, rename)")
    timers.wrap(tarindex.TarIndexer, "feed", "reader: tar index")
    semaphore = _timed_semaphore(timers)
    setattr(parts, "threading", type("T", (), {"Semaphore": semaphore}))  # noqa: B010
    setattr(basebackup, "split_into_parts", _timed_split(timers, parts.split_into_parts))  # noqa: B010
    ws = open_workspace(load_stack(config))
    start = time.perf_counter()
    result = backup_postgres.base_backup(ws, ws.postgres())
    report = timers.report(time.perf_counter() - start, imports)
    report["backup_id"] = result.manifest.backup_id
    print(json.dumps(report))


def internal_profile_extract(config: str, backup_id: str, dest: str) -> None:
    """The restore engine's extract step with timers around its parts."""
    started = time.perf_counter()
    from drkit.adapters.repository import codec, fs
    from drkit.config.loader import load_stack
    from drkit.engines.core.catalog import find_backup
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.postgres import chain_restore, tar_restore
    from drkit.engines.postgres import restore as restore_postgres

    imports = time.perf_counter() - started
    timers = _Timers()
    timers.wrap(tar_restore, "_prepare", "main: create every directory and file")
    timers.wrap(tar_restore, "check_members", "main: check members")
    timers.wrap(restore_postgres, "chown_tree", "main: chown the tree")
    timers.wrap(chain_restore, "restore_parts", "main: restore_parts (all of it)")
    timers.wrap(fs.FsRepository, "get", "worker: repository get")
    timers.wrap(tar_restore, "sha256", "worker: sha256")
    timers.wrap(codec.Codec, "decode", "worker: zstd decompress")
    timers.wrap(os, "pwrite", "worker: pwrite")
    ws = open_workspace(load_stack(config))
    service = ws.postgres()
    manifest = find_backup(ws.repo, ws.stack.name, [service.name], backup_id)
    start = time.perf_counter()
    restore_postgres._extract(ws, service, (manifest,), Path(dest), None)
    print(json.dumps(timers.report(time.perf_counter() - start, imports)))


def profile(bench: Bench) -> dict[str, Any]:
    """Untimed extra runs with timers inside drkit: where a backup's and an extraction's time
    goes. Worker times are summed over the threads."""
    me = [sys.executable, str(SCRIPT)]
    settle(bench.box)
    backup = parse_json_output(
        run_measured([*me, "--internal-profile-backup", str(bench.box.config_path)]).stdout
    )
    bench.made_backups.extend((Path(bench.box.dir) / "repo").glob(f"*/*/backups/{backup['backup_id']}"))
    settle(bench.box)
    dest = bench.restores / "profile-extract"
    argv = [*me, "--internal-profile-extract", str(bench.box.config_path), backup["backup_id"], str(dest)]
    extract = parse_json_output(run_measured(argv).stdout)
    remove(dest)
    return {"backup": backup, "extract": extract}
