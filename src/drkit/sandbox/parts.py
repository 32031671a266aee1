"""What each sandbox service module provides, so the sandbox grows one module per service.

A part module (`drkit.sandbox.redis`, ...) exposes:

    def prepare(ctx: PartContext) -> ServiceEntry
        Allocate ports, create directories and config files, and return the service's
        entry for stack.yaml. PostgreSQL also starts and seeds itself here (others need
        its data); the rest are started by the sandbox through their runtimes, in
        dependency order, waiting on their health probes (the same code as `drkit start`).

    def seed(ctx: PartContext, stack: Stack) -> None      (optional)
        Load data once every service is healthy (objects for the attachments rows, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drkit.infra.ports import free_port
from drkit.sandbox.seed import SeedSize


@dataclass(frozen=True)
class PartContext:
    dir: Path  # the sandbox root
    os_user: str | None  # who runs the services when drkit is root (None otherwise)
    stack_name: str
    wal_mode: str = "archive"
    seed: SeedSize = field(default_factory=SeedSize)
    config_path: Path = Path("stack.yaml")
    pg_bin_dir: str | None = None  # PostgreSQL server binaries; None: the newest Debian ones

    def service_dir(self, name: str) -> Path:
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def logs(self) -> Path:
        path = self.dir / "logs"
        path.mkdir(exist_ok=True)
        return path

    @staticmethod
    def port() -> int:
        return free_port()


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    config: dict[str, Any]  # services.<name> in stack.yaml
    address: str  # DSN or URL, for `drkit sandbox status`
    state: dict[str, Any] = field(default_factory=dict)  # kept in sandbox.json
