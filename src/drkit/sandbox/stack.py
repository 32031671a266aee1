"""The sandbox: real services on loopback ports under one directory, and its stack.yaml.

`up` creates and starts; `down` stops what `up` started (the services of its stack.yaml,
through their runtimes, dependents first) and nothing else; `status` reports each
service's DSN or URL and whether it answers. One module per service (see parts.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drkit.adapters.postgres.client import scalar
from drkit.config.loader import load_stack
from drkit.config.nchat_checks import nchat_checks, nchat_smoke
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RuntimeSpec, Stack
from drkit.engines.stack.start import check_health, start_services, stop_services
from drkit.infra.atomic import write_atomic
from drkit.infra.ownership import chown_tree
from drkit.infra.proc import run_as
from drkit.infra.wait import wait_for
from drkit.runtimes.factory import runtime_for
from drkit.runtimes.local_postgres import LocalPostgres
from drkit.sandbox.parts import PartContext, ServiceEntry
from drkit.sandbox.postgres import default_os_user, drkit_command, server_bin_dir
from drkit.sandbox.seed import SeedSize

STATE_FILE = "sandbox.json"
# Start order for preparing; each is a module drkit.sandbox.<name> (see parts.py).
PARTS = ("postgres", "redis", "s3", "hasura", "meilisearch")


def available_parts() -> tuple[str, ...]:
    return tuple(p for p in PARTS if importlib.util.find_spec(f"drkit.sandbox.{p}_part") or p == "postgres")


@dataclass(frozen=True)
class SandboxOptions:
    wal_mode: str = "archive"
    encrypt: bool = False
    seed: SeedSize = field(default_factory=SeedSize)
    stack_name: str = "sandbox"
    services: tuple[str, ...] | None = None  # None: every part that is available
    pg_bin_dir: str | None = None  # PostgreSQL binaries to run (any major); None: the newest installed


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

    def address(self, service: str) -> str:
        return str(self.state["services"][service]["address"])

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

    def stack(self) -> Stack:
        return load_stack(self.config_path)

    def postgres_runtime(self) -> LocalPostgres:
        pg = self.state["services"]["postgres"]
        return LocalPostgres(
            RuntimeSpec(
                type="local",
                data_dir=pg["data_dir"],
                bin_dir=pg["bin_dir"],
                port=pg["port"],
                os_user=self.os_user,
                log_file=str(self.dir / "logs" / "postgres.log"),
            )
        )


def _part(name: str) -> Any:
    module = "drkit.sandbox.postgres" if name == "postgres" else f"drkit.sandbox.{name}_part"
    return importlib.import_module(module)


def up(directory: str | Path, options: SandboxOptions = SandboxOptions()) -> Sandbox:
    """Create (or restart) the sandbox in `directory` and return it."""
    root = Path(directory).resolve()
    if (root / STATE_FILE).exists():
        box = Sandbox.load(root)
        _start_all(box)
        return box
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"{root} exists and is not empty; choose a new --dir")
    os_user = default_os_user()
    server_bin_dir(options.pg_bin_dir, os_user)  # a wrong --pg-bin-dir is refused before anything exists
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - the database user must traverse it; secrets are 0600
    for sub in ("repo", "state", "logs"):
        (root / sub).mkdir(exist_ok=True)
    chown_tree(root, os_user)
    wanted = options.services or available_parts()
    box = Sandbox(
        root, {"os_user": os_user, "wal_mode": options.wal_mode, "services": {}, "parts": list(wanted)}
    )
    ctx = PartContext(
        root, os_user, options.stack_name, options.wal_mode, options.seed, box.config_path, options.pg_bin_dir
    )
    _write_identity(box, options)
    entries: list[ServiceEntry] = []
    for name in PARTS:
        if name in wanted:
            entry = _part(name).prepare(ctx)
            entries.append(entry)
            box.state["services"][entry.name] = {
                "address": entry.address,
                "kind": entry.config["kind"],
                **entry.state,
            }
            _write_config(box, options, entries)
            chown_tree(root, os_user)
            box.save()
    _start_all(box)
    stack = box.stack()
    for name in PARTS:
        if name in wanted and hasattr(_part(name), "seed"):
            _part(name).seed(ctx, stack)
    chown_tree(root, os_user)
    return box


def _start_all(box: Sandbox) -> None:
    stack = box.stack()
    report = start_services(stack, [], runtime_for=lambda s: runtime_for(s, stack.state_dir))
    if not report.ok:
        bad = report.failures[0]
        raise OperationError(f"sandbox service {bad.service} did not start: {bad.detail}")
    if box.state.get("wal_mode") == "stream":
        start_wal_stream(box)


def _write_identity(box: Sandbox, options: SandboxOptions) -> None:
    if not options.encrypt:
        return
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    path = box.dir / "age-identity.txt"
    write_atomic(path, f"# drkit sandbox key\n{identity}\n".encode(), mode=0o600)
    box.state["age_recipient"] = str(identity.to_public())
    box.state["age_identity_file"] = str(path)


def _write_config(box: Sandbox, options: SandboxOptions, entries: list[ServiceEntry]) -> None:
    config: dict[str, Any] = {
        "version": 1,
        "stack": options.stack_name,
        "state_dir": str(box.dir / "state"),
        "repositories": {"local": {"type": "fs", "path": str(box.dir / "repo")}},
        "services": {e.name: e.config for e in entries},
        "checks": nchat_checks(),
        "smoke": nchat_smoke({e.name: e.config for e in entries}),
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

    def receiving() -> bool:
        if proc.poll() is not None:
            raise OperationError(f"wal-stream exited with {proc.returncode}; see logs/wal-stream.log")
        return bool(scalar(box.dsn, "select active from pg_replication_slots where slot_name = 'drkit'"))

    wait_for(receiving, timeout=60, what="the WAL receiver to connect", fatal=(OperationError,))


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
    box.state.pop("wal_stream_pid", None)
    box.save()
    stack = box.stack()
    running = [h.service for h in check_health(stack) if h.healthy]
    report = stop_services(stack, [], runtime_for=lambda s: runtime_for(s, stack.state_dir))
    stopped += [s.service for s in report.steps if s.service in running and s.ok]
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
    health = {h.service: h for h in check_health(box.stack())}
    services: dict[str, Any] = {}
    for name, svc in box.state["services"].items():
        h = health.get(name)
        services[name] = {
            "kind": svc.get("kind"),
            "address": svc.get("address"),
            "dsn" if svc.get("kind") == "postgres" else "url": svc.get("address"),
            "running": bool(h and h.healthy),
            "detail": h.detail if h else "",
        }
    pid = box.state.get("wal_stream_pid")
    if pid:
        services["wal-stream"] = {"kind": "process", "pid": pid, "running": _alive(int(pid))}
    return {"dir": str(box.dir), "config": str(box.config_path), "services": services}
