"""The stack as configured: services, how they run, how they are backed up, where to."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any

from drkit.domain.checks import IntegrityCheck
from drkit.domain.errors import UsageError
from drkit.domain.storage_policy import StoragePolicy


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
    rpo_from: str | None = None  # the service whose RPO this one inherits (its data lives there)

    @property
    def rpo_seconds(self) -> float | None:
        """The RPO target in seconds; None: no target (0 is a target: no loss at all)."""
        return self.rpo.total_seconds() if self.rpo is not None else None

    @property
    def rto_seconds(self) -> float | None:
        return self.rto.total_seconds() if self.rto is not None else None


# Kinds whose data lives in the PostgreSQL they depend on: Hasura keeps its metadata in
# hdb_catalog, hasura-auth its users and sessions. Their RPO is that PostgreSQL's.
DATA_IN_DEPENDENCIES = frozenset({"hasura", "auth"})


def with_inherited_rpo(services: dict[str, Service]) -> dict[str, Service]:
    """One meaning of `rpo` for every service: the most data a disaster may cost it. A service
    of a kind whose data lives in its PostgreSQL dependencies (DATA_IN_DEPENDENCIES) and
    that sets no `rpo` inherits the tightest of theirs (`rpo_from` names it)."""
    out = dict(services)
    for name, svc in services.items():
        if svc.rpo is not None or svc.kind not in DATA_IN_DEPENDENCIES:
            continue
        holders = [services[d] for d in svc.depends_on if d in services and services[d].kind == "postgres"]
        targets = [(h.rpo, h.name) for h in holders if h.rpo is not None]
        if targets:
            rpo, source = min(targets)
            out[name] = replace(svc, rpo=rpo, rpo_from=source)
    return out


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
    storage: StoragePolicy = field(default_factory=StoragePolicy)  # s3: class, lifecycle, lock

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
    """Where notifications go: an apprise URL (a secret: it holds tokens), the least severity
    it receives, and when: `always`, in `business` hours or `after` hours (a critical message
    ignores the hours unless `critical_any_time` is off)."""

    url: str = field(repr=False)
    min_severity: Severity = Severity.WARNING
    hours: str = "always"
    critical_any_time: bool = True


@dataclass(frozen=True)
class BusinessHours:
    """Weekdays (Monday 0) and a time of day window, in `Stack.notify_time_zone`. A window
    whose end is before its start runs past midnight."""

    days: tuple[int, ...] = (0, 1, 2, 3, 4)
    start: time = time(9, 0)
    end: time = time(18, 0)

    def contains(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= t < self.end
        if t >= self.start:  # an overnight window belongs to the day it starts on
            return local.weekday() in self.days
        return (local.weekday() - 1) % 7 in self.days and t < self.end


@dataclass(frozen=True)
class Contact:
    """An emergency contact (not a secret: printed where an incident is handled)."""

    name: str
    role: str = ""
    phone: str = ""
    email: str = ""
    chat: str = ""
    notes: str = ""

    def line(self) -> str:
        reach = ", ".join(x for x in (self.phone, self.email, self.chat) if x)
        text = self.name + (f" ({self.role})" if self.role else "") + (f": {reach}" if reach else "")
        return text + (f"; {self.notes}" if self.notes else "")


JOB_TYPES = ("backup", "verify", "sync", "drill", "prune", "status-notify", "digest")


@dataclass(frozen=True)
class ScheduledJob:
    """A job `drkit schedule run` starts at the times of its cron expression (UTC)."""

    name: str
    cron: str  # five fields: minute hour day-of-month month day-of-week
    job: str  # one of JOB_TYPES
    backup_type: str = "base"  # backup: base | incremental | logical | all-set | all-set-incremental
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
    set_base_max_age: timedelta = timedelta(hours=12)  # `backup --all` reuses a younger base backup
    notify_time_zone: str = "UTC"  # the zone of business_hours (notification routing)
    business_hours: BusinessHours = BusinessHours()
    contacts: tuple[Contact, ...] = ()  # emergency contacts, in the order to call them
    escalation: tuple[str, ...] = ()  # the escalation path, one step each

    def escalation_record(self) -> dict[str, list[Any]]:
        """Contacts and escalation path as a journal or a report records them ({} when none)."""
        if not self.contacts and not self.escalation:
            return {}
        return {"contacts": [asdict(c) for c in self.contacts], "path": list(self.escalation)}

    def service(self, name: str) -> Service:
        """The service `name`; a UsageError listing the known ones otherwise."""
        found = self.services.get(name)
        if found is None:
            raise UsageError(self.unknown_service(name))
        return found

    def require_services(self, names: Iterable[str]) -> list[Service]:
        """Each named service; a UsageError naming the first unknown one and the known ones."""
        return [self.service(n) for n in names]

    def unknown_service(self, name: str) -> str:
        """`no service 'redsi' in stack.yaml: did you mean 'redis'? (known: postgres, redis)`."""
        known = sorted(self.services)
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        guess = f": did you mean {near[0]!r}?" if near else ""
        where = f" in {self.source_path}" if self.source_path else ""
        return f"no service {name!r}{where}{guess} (known: {', '.join(known)})"

    def services_of_kind(self, kind: str) -> list[Service]:
        return [s for s in self.services.values() if s.kind == kind]

    @property
    def repository(self) -> RepositorySpec:
        return self.repositories[self.primary_repository]
