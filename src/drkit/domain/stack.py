"""The stack as configured: services, how they run, how they are backed up, where to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from drkit.domain.checks import IntegrityCheck


class WalMode(StrEnum):
    ARCHIVE = "archive"
    STREAM = "stream"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class RuntimeSpec:
    """How a service is run. `type` is `local`, `compose` or `systemd`."""

    type: str
    container: str | None = None
    unit: str | None = None
    data_dir: str | None = None
    bin_dir: str | None = None
    port: int | None = None
    os_user: str | None = None
    log_file: str | None = None
    command: tuple[str, ...] = ()
    stop_timeout: float | None = None  # seconds before SIGKILL (local processes)
    volume: str | None = None  # compose: the named volume holding the service's data


@dataclass(frozen=True)
class PostgresPolicy:
    wal_mode: WalMode = WalMode.ARCHIVE
    slot: str = "drkit"
    checkpoint: str = "fast"
    databases: tuple[str, ...] = ()
    compress_level: int = 1
    parallel: int = 2
    part_size: int = 16 * 1024 * 1024
    max_rate: str | None = None  # pg_basebackup --max-rate (e.g. 100M), to spare the server's I/O
    keep_daily: int = 30
    keep_weekly: int = 12
    wal_retention: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class HealthProbe:
    type: str
    target: str = ""
    expect_status: int = 200
    expect_body: str | None = None
    timeout: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class SmokeCheck:
    """After a recovery: does the stack do its job? A named probe against one service
    (an HTTP request with the expected status and body, a GraphQL query through Hasura, the
    auth canary sign-in, a SQL query)."""

    name: str
    service: str
    probe: HealthProbe


@dataclass(frozen=True)
class SearchIndex:
    name: str
    query: str
    primary_key: str = "id"


@dataclass(frozen=True)
class Service:
    name: str
    kind: str
    runtime: RuntimeSpec
    dsn: str | None = None
    url: str | None = None
    password: str | None = None
    depends_on: tuple[str, ...] = ()
    rto: timedelta | None = None
    rpo: timedelta | None = None
    priority: Priority = Priority.MEDIUM
    postgres: PostgresPolicy | None = None
    health: HealthProbe | None = None
    keep_last: int | None = None  # backups of this service to keep (backup.retention.keep_last)
    indexes: tuple[SearchIndex, ...] = ()
    access_key: str | None = None
    secret_key: str | None = None
    buckets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Encryption:
    """age encryption: recipients (public keys) and the identity (secret key) for restores."""

    recipients: tuple[str, ...]
    identity: str | None = None


@dataclass(frozen=True)
class RepositorySpec:
    name: str
    type: str
    path: str | None = None
    endpoint: str | None = None
    bucket: str | None = None
    prefix: str = ""
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"


@dataclass(frozen=True)
class Stack:
    name: str
    services: dict[str, Service]
    repositories: dict[str, RepositorySpec]
    primary_repository: str
    encryption: Encryption | None = None
    source_path: str = ""
    state_dir: str = ".drkit"
    checks: tuple[IntegrityCheck, ...] = ()
    smoke: tuple[SmokeCheck, ...] = ()
    host_id: str | None = None  # who this host is in repository leases (engines/core/lease.py)

    def service(self, name: str) -> Service:
        return self.services[name]

    def services_of_kind(self, kind: str) -> list[Service]:
        return [s for s in self.services.values() if s.kind == kind]

    @property
    def repository(self) -> RepositorySpec:
        return self.repositories[self.primary_repository]
