"""The stack as configured: services, how they run, how they are backed up, where to."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    exec_prefix: tuple[str, ...] = ()  # local postgres: start the server through this prefix
    volume: str | None = None  # compose: the named volume with the service's data
    mount: str | None = None  # compose: where the container mounts that volume
    env_file: str | None = None  # local: variables for the process (secrets off its command line)


@dataclass(frozen=True)
class Retention:
    """Which backups `drkit prune` keeps (grandfather-father-son, engines/ops/retention_policy.py):
    the newest `keep_last`, and the newest of each of the last `keep_daily` days,
    `keep_weekly` ISO weeks and `keep_monthly` months that have a backup (UTC)."""

    keep_last: int | None = None
    keep_daily: int = 30
    keep_weekly: int = 12
    keep_monthly: int = 12


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
class Member:
    """One member of a replicated PostgreSQL service: the configured primary (named after
    the service) or a standby. Which one is primary now is found out, never assumed."""

    name: str
    dsn: str
    runtime: RuntimeSpec
    slot: str
    synchronous: bool = False


@dataclass(frozen=True)
class Repoint:
    type: str  # env_file | pgbouncer | haproxy | hook
    path: str | None = None
    key: str | None = None
    format: str = "{host}"
    restart: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    admin_dsn: str | None = None
    socket: str | None = None
    backend: str | None = None
    server: str | None = None
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class FailoverPolicy:
    probes: int = 3
    window: float = 6.0  # seconds
    probe_timeout: float = 2.0
    max_lag: float | None = None  # seconds; None: the service's rpo
    fencing: str = "runtime"
    pause: tuple[str, ...] = ()
    repoint: tuple[Repoint, ...] = ()


@dataclass(frozen=True)
class Patroni:
    """A Patroni cluster manages the service: drkit reads and asks through its REST API."""

    rest: tuple[str, ...]
    auth: str | None = None  # user:password (basic auth)
    timeout: float = 3.0
    wait: float = 60.0


@dataclass(frozen=True)
class Replication:
    members: tuple[Member, ...]  # the configured primary first
    user: str = "replicator"
    password: str | None = None
    restore_from_archive: bool = True
    failover: FailoverPolicy = FailoverPolicy()
    patroni: Patroni | None = None

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)


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
    retention: Retention = Retention()  # what `drkit prune` keeps (backup.retention)
    indexes: tuple[SearchIndex, ...] = ()
    access_key: str | None = None
    secret_key: str | None = None
    buckets: tuple[str, ...] = ()
    replication: Replication | None = None


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
    encryption: Encryption | None = None  # copies stored here must be age-encrypted
    offsite: bool = False
    sign_key: str | None = None  # HMAC key for manifests and sets (resolved secret)
    sign_key_ref: str | None = None  # how it is referenced (set even when it could not be read)

    @property
    def is_offsite(self) -> bool:
        """Another site, for the 3-2-1 rule: marked so, or an S3 bucket."""
        return self.offsite or self.type == "s3"


class Severity(StrEnum):
    """How urgent a notification is; a target receives those at or above its minimum."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ("info", "warning", "critical").index(self.value)


@dataclass(frozen=True)
class NotifyTarget:
    """Where notifications go: an apprise URL (a secret: it holds tokens) and the least
    severity it receives."""

    url: str = field(repr=False)
    min_severity: Severity = Severity.WARNING


JOB_TYPES = ("backup", "verify", "sync", "drill", "prune", "status-notify", "digest")


@dataclass(frozen=True)
class ScheduledJob:
    """A job `drkit schedule run` starts at the times of its cron expression (UTC)."""

    name: str
    cron: str  # five fields: minute hour day-of-month month day-of-week
    job: str  # one of JOB_TYPES
    backup_type: str = "base"  # backup: base | incremental | logical | all-set
    services: tuple[str, ...] = ()  # backup: these services (default: every one)
    to: str | None = None  # sync: this repository (default: every non-primary one)
    deep: bool = True  # verify: --deep on the newest base backup
    timeout: float = 6 * 3600.0  # seconds: a run still going after this long is killed


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
    notifications: tuple[NotifyTarget, ...] = ()
    schedule: tuple[ScheduledJob, ...] | None = None  # None: the default jobs
    set_retention: Retention = Retention()  # which stack-wide sets `drkit prune` keeps

    def service(self, name: str) -> Service:
        return self.services[name]

    def services_of_kind(self, kind: str) -> list[Service]:
        return [s for s in self.services.values() if s.kind == kind]

    @property
    def repository(self) -> RepositorySpec:
        return self.repositories[self.primary_repository]
