"""The sandbox: real services on loopback ports under one directory, and its stack.yaml.

`up` creates and starts; `down` stops what `up` started (recorded in sandbox.json) and
nothing else; `status` reports each service's DSN or URL and whether it answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drkit.adapters.postgres.client import execute, scalar
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.atomic import write_atomic
from drkit.infra.ownership import chown_tree
from drkit.infra.ports import free_port
from drkit.infra.proc import run_as
from drkit.infra.wait import wait_for
from drkit.runtimes.local_postgres import LocalPostgres
from drkit.sandbox.postgres import (
    ClusterSpec,
    default_bin_dir,
    default_os_user,
    init_cluster,
)
from drkit.sandbox.seed import SeedSize, create_schema, seed

STATE_FILE = "sandbox.json"


def drkit_command() -> list[str]:
    """How the database user runs drkit (archive_command, restore_command)."""
    return [sys.executable, "-m", "drkit"]


@dataclass(frozen=True)
class SandboxOptions:
    wal_mode: str = "archive"
    encrypt: bool = False
    seed: SeedSize = field(default_factory=SeedSize)
    stack_name: str = "sandbox"


@dataclass
class Sandbox:
    dir: Path
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.dir / "stack.yaml"

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def dsn(self) -> str:
        return str(self.state["services"]["postgres"]["dsn"])

    @property
    def os_user(self) -> str | None:
        value = self.state.get("os_user")
        return str(value) if value else None

    @classmethod
    def load(cls, directory: str | Path) -> Sandbox:
        path = Path(directory) / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise UsageError(f"no sandbox in {directory}", hint="start one with `drkit sandbox up`") from exc
        return cls(Path(directory).resolve(), state)

    def save(self) -> None:
        write_atomic(self.state_path, json.dumps(self.state, indent=2).encode())

    def postgres_runtime(self) -> LocalPostgres:
        pg = self.state["services"]["postgres"]
        return LocalPostgres(
            RuntimeSpec(
                type="local",
                data_dir=pg["data_dir"],
                bin_dir=pg["bin_dir"],
                port=pg["port"],
                os_user=self.os_user,
                log_file=pg["log_file"],
            )
        )


def up(directory: str | Path, options: SandboxOptions = SandboxOptions()) -> Sandbox:
    """Create (or restart) the sandbox in `directory` and return it."""
    root = Path(directory).resolve()
    if (root / STATE_FILE).exists():
        box = Sandbox.load(root)
        box.postgres_runtime().start()
        if box.state.get("wal_mode") == "stream":
            start_wal_stream(box)
        return box
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"{root} exists and is not empty; choose a new --dir")
    os_user = default_os_user()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - the database user must traverse it; secrets are 0600
    for sub in ("repo", "state", "logs", "postgres"):
        (root / sub).mkdir(exist_ok=True)
    box = Sandbox(root, {"os_user": os_user, "wal_mode": options.wal_mode, "services": {}})
    _write_identity(box, options)
    port = free_port()
    bin_dir = default_bin_dir()
    data_dir = root / "postgres" / "data"
    archive = None
    if options.wal_mode == "archive":
        archive = " ".join(
            [
                *(f'"{p}"' for p in drkit_command()),
                "--config",
                f'"{box.config_path}"',
                "wal-push",
                '"%p"',
            ]
        )
    spec = ClusterSpec(
        data_dir=data_dir,
        socket_dir=root / "postgres",
        port=port,
        bin_dir=bin_dir,
        os_user=os_user,
        archive_command=archive,
    )
    box.state["services"]["postgres"] = {
        "kind": "postgres",
        "port": port,
        "data_dir": str(data_dir),
        "bin_dir": bin_dir,
        "log_file": str(root / "logs" / "postgres.log"),
        "dsn": f"host=127.0.0.1 port={port} user=postgres dbname=nchat",
    }
    _write_config(box, options)
    chown_tree(root, os_user)
    init_cluster(spec)
    box.save()
    box.postgres_runtime().start()
    admin = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    execute(admin, "create database nchat")
    create_schema(box.dsn)
    seed(box.dsn, options.seed)
    if options.wal_mode == "stream":
        start_wal_stream(box)
    chown_tree(root, os_user)
    return box


def _write_identity(box: Sandbox, options: SandboxOptions) -> None:
    if not options.encrypt:
        return
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    path = box.dir / "age-identity.txt"
    write_atomic(path, f"# drkit sandbox key\n{identity}\n".encode(), mode=0o600)
    box.state["age_recipient"] = str(identity.to_public())
    box.state["age_identity_file"] = str(path)


def _write_config(box: Sandbox, options: SandboxOptions) -> None:
    pg = box.state["services"]["postgres"]
    runtime: dict[str, Any] = {
        "type": "local",
        "data_dir": pg["data_dir"],
        "bin_dir": pg["bin_dir"],
        "port": pg["port"],
        "log_file": pg["log_file"],
    }
    if box.os_user:
        runtime["os_user"] = box.os_user
    config: dict[str, Any] = {
        "version": 1,
        "stack": options.stack_name,
        "state_dir": str(box.dir / "state"),
        "repositories": {"local": {"type": "fs", "path": str(box.dir / "repo")}},
        "services": {
            "postgres": {
                "kind": "postgres",
                "runtime": runtime,
                "dsn": pg["dsn"],
                "rto": "30m",
                "rpo": "5m",
                "priority": "critical",
                "backup": {
                    "wal_mode": options.wal_mode,
                    "databases": ["nchat"],
                    "checkpoint": "fast",
                },
            }
        },
    }
    if options.encrypt:
        config["encryption"] = {
            "recipients": [box.state["age_recipient"]],
            "identity": f"file:{box.state['age_identity_file']}",
        }
    text = "# Written by `drkit sandbox up`.\n" + yaml.safe_dump(config, sort_keys=False)
    write_atomic(box.config_path, text.encode())


def start_wal_stream(box: Sandbox) -> None:
    """Run `drkit wal-stream` in the background (the sandbox's WAL receiver)."""
    pid = box.state.get("wal_stream_pid")
    if pid and _alive(int(pid)):
        return
    who = run_as(box.os_user)
    log = open(box.dir / "logs" / "wal-stream.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [*drkit_command(), "--config", str(box.config_path), "wal-stream"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        user=who.user,
        group=who.group,
        extra_groups=who.extra_groups,
    )
    log.close()
    box.state["wal_stream_pid"] = proc.pid
    box.save()
    slot = "drkit"

    def receiving() -> bool:
        if proc.poll() is not None:
            raise OperationError(f"wal-stream exited with {proc.returncode}; see logs/wal-stream.log")
        return bool(scalar(box.dsn, "select active from pg_replication_slots where slot_name = %s", (slot,)))

    wait_for(receiving, timeout=60, what="the WAL receiver to connect")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def down(directory: str | Path) -> list[str]:
    """Stop what `up` started; return what was stopped."""
    box = Sandbox.load(directory)
    stopped: list[str] = []
    pid = box.state.get("wal_stream_pid")
    if pid and _alive(int(pid)):
        _terminate(int(pid))
        stopped.append("wal-stream")
    runtime = box.postgres_runtime()
    if runtime.is_running():
        runtime.stop()
        stopped.append("postgres")
    box.state.pop("wal_stream_pid", None)
    box.save()
    return stopped


def _terminate(pid: int, timeout: float = 15.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def gone() -> bool:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0
        return not _alive(pid) or waited == pid

    try:
        wait_for(gone, timeout=timeout, what=f"process {pid} to exit")
    except OperationError:
        os.killpg(pid, signal.SIGKILL)


def status(directory: str | Path) -> dict[str, Any]:
    box = Sandbox.load(directory)
    services: dict[str, Any] = {}
    for name, svc in box.state["services"].items():
        entry = {k: v for k, v in svc.items() if k in ("kind", "dsn", "url", "port")}
        entry["running"] = box.postgres_runtime().is_running() if name == "postgres" else None
        services[name] = entry
    pid = box.state.get("wal_stream_pid")
    if pid:
        services["wal-stream"] = {"kind": "process", "pid": pid, "running": _alive(int(pid))}
    return {"dir": str(box.dir), "config": str(box.config_path), "services": services}
