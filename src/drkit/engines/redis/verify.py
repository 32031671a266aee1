"""Verify a Redis backup beyond its stored files: the file records a restore follows
(`verify_layout`), and `--deep`: load it into a throwaway redis-server and compare.

The files are fetched and checked as a restore does (SHA-256 per part and per file,
redis-check-rdb/aof) into a scratch directory. A redis-server from PATH starts over them on
a free loopback port with saving off, loading them as the backed-up server would (its AOF
when the backup has one), and its key counts and sample are compared with the manifest.
The live server is not touched; the scratch directory is removed afterwards.
"""

from __future__ import annotations

import shutil

from drkit.adapters.redis.client import Layout, RedisServer
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError
from drkit.domain.names import is_plain_name
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.redis.compare import compare_server
from drkit.engines.redis.files import check_files, records_of, require_sound, scratch_dir
from drkit.engines.redis.restore import LOAD_TIMEOUT, fetch
from drkit.infra.ownership import chown_tree
from drkit.infra.ports import free_port
from drkit.infra.proc import find_tool
from drkit.runtimes.local_process import LocalProcess


def throwaway_command(layout: Layout, aof: bool, data_dir: str, port: int) -> tuple[str, ...]:
    """redis-server over a backup's files: loopback only, never saving over them."""
    return (
        find_tool("redis-server"),
        *("--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes"),
        *("--dir", data_dir, "--dbfilename", layout.dbfilename, "--save", ""),
        *("--appendonly", "yes" if aof else "no", "--appendfsync", "no"),
        *("--appenddirname", layout.appenddirname, "--appendfilename", layout.appendfilename),
        *("--daemonize", "no", "--logfile", ""),
    )


def verify_layout(m: Manifest) -> list[CheckResult]:
    """What a restore reads besides the stored files' bytes (which `verify` re-hashes): the
    server files the backup records, each with a safe name and parts that are among the
    manifest's files. A backup that fails here would be refused by `drkit restore`."""
    try:
        records = records_of(m)
    except (KeyError, TypeError, ValueError) as exc:
        return [CheckResult("layout", Status.FAILED, f"the manifest's file records are unreadable ({exc})")]
    if not records:
        return [CheckResult("layout", Status.FAILED, "the backup records no Redis file")]
    stored = {f.name for f in m.files}
    for record in records:
        if not all(is_plain_name(p) for p in record.path.split("/")):
            return [CheckResult("layout", Status.FAILED, f"unsafe file name {record.path!r}")]
        missing = [p for p in record.parts if p not in stored]
        if missing or not record.parts:
            detail = (
                f"{record.path}: part {missing[0]} is not among the manifest's files"
                if missing
                else (f"{record.path} has no parts")
            )
            return [CheckResult("layout", Status.FAILED, detail)]
    return [CheckResult("layout", Status.OK, f"{len(records)} Redis file(s), every part stored")]


def verify_deep(ws: Workspace, service: Service, m: Manifest) -> list[CheckResult]:
    scratch = scratch_dir(ws, service, f"verify-{m.backup_id}")
    data = scratch / "data"
    results: list[CheckResult] = []
    runtime: LocalProcess | None = None
    try:
        records = records_of(m)
        fetch(ws, m, records, data)
        require_sound(check_files(data, records), f"backup {m.backup_id}")
        results.append(CheckResult("files", Status.OK, f"{len(records)} files pass redis-check-rdb/aof"))
        port = free_port()
        layout = Layout.from_dict(m.details["config"])
        spec = RuntimeSpec(
            type="local",
            command=throwaway_command(layout, bool(m.details.get("aof")), str(data), port),
            data_dir=str(data),
            log_file=str(scratch / "redis.log"),
            os_user=service.runtime.os_user,
        )
        chown_tree(scratch, service.runtime.os_user)
        runtime = LocalProcess(spec, name=f"verify-{service.name}", state_dir=scratch, clock=ws.clock)
        runtime.start()
        with RedisServer(f"redis://127.0.0.1:{port}/0") as server:
            server.wait_loaded(timeout=LOAD_TIMEOUT, alive=runtime.is_running, clock=ws.clock)
            results.append(
                CheckResult(
                    "restore",
                    Status.OK,
                    f"loaded by a throwaway redis-server on port {port} (deep: every file passed "
                    "redis-check-rdb/aof, the server loaded them as the backed-up one would; "
                    "key counts and the recorded sample are compared next)",
                )
            )
            results += compare_server(server, m, int(ws.clock.now().timestamp() * 1000))
    except DrkitError as exc:
        results.append(CheckResult("restore", Status.FAILED, exc.message))
    finally:
        if runtime is not None:
            runtime.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return results
