"""The schema of stack.yaml. Unknown keys are errors (extra="forbid"), durations are checked."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from drkit.config.dsn import check_dsn
from drkit.domain.durations import parse_duration

Loc = tuple[str | int, ...]


class Problems(ValueError):
    """Several problems one validator found, each at its own key path below the model that
    raised it: the loader reports each with its own line."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        result = timedelta(seconds=float(value))
    elif isinstance(value, str):
        result = parse_duration(value)
    else:
        raise ValueError(f"bad duration {value!r}: use a number with a unit, like 90s, 5m, 1h, 7d")
    if result < timedelta(0):
        raise ValueError(f"bad duration {value!r}: it cannot be negative")
    return result


def _dsn(value: str) -> str:
    check_dsn(value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Dsn = Annotated[str, AfterValidator(_dsn)]  # a libpq connection string, checked as libpq reads it
SecretRef = Annotated[str, Field(pattern=r"^(env|file|dotenv):.+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuntimeModel(Strict):
    type: Literal["local", "compose", "systemd"] = "local"
    container: str | None = None
    unit: str | None = None
    data_dir: str | None = None
    bin_dir: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    os_user: str | None = None
    log_file: str | None = None
    command: list[str] = []
    stop_timeout: Duration | None = None  # local: SIGKILL after this long (default 60s)
    # local: runs the server's start command where the server lives, e.g. [ip, netns, exec, db2]
    exec_prefix: list[str] = []
    # compose: the named volume holding the service's data, and where the container mounts it;
    # the runtime finds its host path with `docker volume inspect` (never a guessed path).
    volume: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    mount: str | None = Field(default=None, pattern=r"^/")
    env_file: str | None = None  # local: KEY=VALUE lines added to the process's environment


class RetentionModel(Strict):
    keep_last: int | None = Field(default=None, ge=1)
    keep_daily: int = Field(default=30, ge=0)
    keep_weekly: int = Field(default=12, ge=0)
    keep_monthly: int = Field(default=12, ge=0)


class BackupPolicyModel(Strict):
    wal_mode: Literal["archive", "stream"] = "archive"
    slot: str = Field(default="drkit", pattern=r"^[a-z0-9_]{1,63}$")
    checkpoint: Literal["fast", "spread"] = "fast"
    databases: list[str] = []
    compress_level: int = Field(default=1, ge=1, le=19)
    parallel: int = Field(default=2, ge=1, le=32)
    part_size: str = "16MiB"
    max_rate: str | None = Field(default=None, pattern=r"^\d+[kM]?$")
    retention: RetentionModel = RetentionModel()
    wal_retention: Duration = timedelta(days=7)

    @model_validator(mode="after")
    def _part_size(self) -> BackupPolicyModel:
        parse_size(self.part_size)
        return self


def parse_size(text: str) -> int:
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2}
    raw = text.strip().lower()
    for unit, factor in units.items():
        if raw.endswith(unit) and raw[: -len(unit)].strip().isdigit():
            return int(raw[: -len(unit)]) * factor
    if raw.isdigit():
        return int(raw)
    raise ValueError(f"bad size {text!r}: use a number with a unit, like 16MiB")


class HealthModel(Strict):
    type: Literal["sql", "redis", "http", "hasura", "auth", "tcp", "none", "s3", "graphql"]
    target: str = ""
    expect_status: int = 200
    expect_body: str | None = None
    timeout: Duration = timedelta(seconds=60)


class IndexModel(Strict):
    """A search index and the PostgreSQL query it is built from (`drkit search rebuild`)."""

    query: str
    primary_key: str = "id"


SLOT = r"^[a-z0-9_]{1,63}$"
_JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class StandbyModel(Strict):
    """A streaming standby of a PostgreSQL service, on a host (runtime) of its own."""

    dsn: Dsn
    runtime: RuntimeModel
    slot: str | None = Field(default=None, pattern=SLOT)
    synchronous: bool = False


class RepointModel(Strict):
    """How clients are told where the primary now is."""

    type: Literal["env_file", "pgbouncer", "haproxy", "hook"]
    path: str | None = None  # env_file: the file; pgbouncer: its ini file
    key: str | None = None  # env_file: the variable to rewrite
    format: str = "{host}"  # env_file: the value ({host}, {port}, {name})
    restart: list[str] = []  # env_file: services restarted after the rewrite (dependency order)
    databases: list[str] = []  # pgbouncer: the [databases] entries to repoint (empty: all)
    admin_dsn: Dsn | None = None  # pgbouncer: its admin console (RELOAD, PAUSE, RESUME)
    socket: str | None = None  # haproxy: the runtime API socket
    backend: str | None = None  # haproxy: backend/server to repoint
    server: str | None = None
    command: list[str] = []  # hook: run with DRKIT_PRIMARY_NAME/HOST/PORT in its environment

    @model_validator(mode="after")
    def _complete(self) -> RepointModel:
        needs = {
            "env_file": ("path", "key"),
            "pgbouncer": ("path", "admin_dsn"),
            "haproxy": ("socket", "backend", "server"),
            "hook": ("command",),
        }[self.type]
        missing = [k for k in needs if not getattr(self, k)]
        if missing:
            raise ValueError(f"repoint {self.type} needs {', '.join(missing)}")
        return self


class FailoverModel(Strict):
    probes: int = Field(default=3, ge=2, le=100)  # failed probes needed to call the primary down
    window: Duration = timedelta(seconds=6)  # ... spread over this long
    probe_timeout: Duration = timedelta(seconds=2)
    max_lag: Duration | None = None  # the most a candidate may lag (default: the service's rpo)
    fencing: Literal["runtime", "none"] = "runtime"
    pause: list[str] = []  # writer services paused through their runtime during a switchover
    repoint: list[RepointModel] = []


class PatroniModel(Strict):
    """A Patroni cluster runs this service: drkit goes through its REST API, never acts itself."""

    rest: list[str] = Field(min_length=1)  # each member's REST API, http(s)://host:8008
    auth: SecretRef | None = None  # "user:password" for the REST API's basic auth (its POSTs)
    timeout: Duration = timedelta(seconds=3)  # per request
    wait: Duration = timedelta(seconds=60)  # for a new leader after a switchover or failover


class ReplicationModel(Strict):
    user: str = "replicator"
    password: SecretRef | None = None
    slot: str | None = Field(default=None, pattern=SLOT)  # the primary's slot when it follows
    synchronous: bool = False  # the configured primary, when it follows another member
    restore_from_archive: bool = True  # restore_command from drkit's archive as a fallback
    standbys: dict[str, StandbyModel] = {}
    failover: FailoverModel = FailoverModel()
    patroni: PatroniModel | None = None  # the members are then Patroni's

    @model_validator(mode="after")
    def _members(self) -> ReplicationModel:
        if not self.standbys and self.patroni is None:
            raise ValueError("replication needs standbys (or a patroni cluster)")
        return self


class ServiceModel(Strict):
    kind: Literal[
        "postgres",
        "redis",
        "s3",
        "meilisearch",
        "hasura",
        "auth",
        "functions",
        "monitoring",
        "http",
    ]
    runtime: RuntimeModel = RuntimeModel()
    dsn: Dsn | None = None
    url: str | None = None
    password: SecretRef | None = None
    depends_on: list[str] = []
    rto: Duration | None = None
    rpo: Duration | None = None
    priority: Literal["critical", "high", "medium", "low"] = "medium"
    health: HealthModel | None = None
    backup: BackupPolicyModel | None = None
    indexes: dict[str, IndexModel] = {}
    access_key: SecretRef | None = None  # s3: the object store's credentials
    secret_key: SecretRef | None = None
    buckets: list[str] = []  # s3: buckets to back up (empty: every bucket)
    replication: ReplicationModel | None = None  # postgres: streaming standbys, failover

    @model_validator(mode="after")
    def _replication(self) -> ServiceModel:
        if self.replication is not None and self.kind != "postgres":
            raise ValueError("replication is only for services of kind postgres")
        return self


class EncryptionModel(Strict):
    recipients: list[str] = Field(min_length=1)
    identity: SecretRef | None = None


_READABLE = Literal["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"]
_TRANSITION = Literal[
    "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"
]
_DAY = timedelta(days=1)


def _whole_days(value: timedelta, what: str) -> None:
    if value < _DAY or value % _DAY:
        raise ValueError(f"{what} must be a whole number of days (at least 1d), like 90d")


class TransitionModel(Strict):
    """A lifecycle transition of the bulk data stored there (docs/offsite.md)."""

    after: Duration
    storage_class: _TRANSITION

    @model_validator(mode="after")
    def _days(self) -> TransitionModel:
        _whole_days(self.after, "after")
        return self


class LifecycleModel(Strict):
    transitions: list[TransitionModel] = Field(min_length=1)

    @model_validator(mode="after")
    def _order(self) -> LifecycleModel:
        afters = [t.after for t in self.transitions]
        if afters != sorted(set(afters)):
            raise ValueError("lifecycle transitions must come in order of `after`, each later than the last")
        return self


class CredentialsModel(Strict):
    access_key: SecretRef
    secret_key: SecretRef


class ObjectLockModel(Strict):
    """S3 Object Lock: the bucket's default retention, proven on a canary by `drkit sync`."""

    mode: Literal["compliance", "governance"] = "compliance"
    retain: Duration
    prove_with: CredentialsModel | None = None  # for the canary only (see docs/offsite.md)

    @model_validator(mode="after")
    def _days(self) -> ObjectLockModel:
        _whole_days(self.retain, "retain")
        return self


class ArchiveRestoreModel(Strict):
    """Reading back objects a lifecycle rule moved to GLACIER or DEEP_ARCHIVE."""

    tier: Literal["Expedited", "Standard", "Bulk"] = "Standard"
    days: int = Field(default=7, ge=1, le=365)
    wait: Duration = timedelta(hours=48)
    poll: Duration = timedelta(minutes=5)
    automatic: bool = True


class RepositoryModel(Strict):
    type: Literal["fs", "s3"]
    path: str | None = None
    endpoint: str | None = None
    bucket: str | None = None
    prefix: str = ""
    access_key: SecretRef | None = None
    secret_key: SecretRef | None = None
    region: str = "us-east-1"
    encryption: EncryptionModel | None = None  # what `drkit sync` stores here is age-encrypted
    offsite: bool = False  # another site (s3 repositories count as off-site anyway): 3-2-1
    sign_key: SecretRef | None = None  # HMAC-SHA256 key: manifests and sets signed and checked
    # s3 (docs/offsite.md): how objects are stored there and how long they must stay
    storage_class: _READABLE | None = None
    lifecycle: LifecycleModel | None = None
    min_retention: Duration | None = None
    object_lock: ObjectLockModel | None = None
    archive_restore: ArchiveRestoreModel = ArchiveRestoreModel()

    @field_validator("storage_class", mode="before")
    @classmethod
    def _readable(cls, value: object) -> object:
        if value in ("GLACIER", "DEEP_ARCHIVE"):
            raise ValueError(
                f"{value} is an archive tier: nothing written there can be read without a restore "
                "request (manifests included); write STANDARD_IA and reach the archive with "
                f"`lifecycle: {{transitions: [{{after: 90d, storage_class: {value}}}]}}`"
            )
        return value

    @model_validator(mode="after")
    def _s3_only(self) -> RepositoryModel:
        if self.type != "s3":
            given = [k for k in ("storage_class", "lifecycle", "object_lock") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for repositories of type s3")
        return self


class ExpectModel(Strict):
    equals: float | None = None
    at_most: float | None = None
    at_least: float | None = None
    equals_query: str | None = None
    tolerance: float = Field(default=0, ge=0)


class CheckModel(Strict):
    name: str
    service: str = "postgres"
    database: str | None = None
    query: str | None = None
    builtin: str | None = None
    expect: ExpectModel = ExpectModel()
    severity: Literal["critical", "warning"] = "critical"

    @model_validator(mode="after")
    def _one_source(self) -> CheckModel:
        if (self.query is None) == (self.builtin is None):
            raise ValueError("a check needs exactly one of `query` or `builtin`")
        return self


class SmokeModel(Strict):
    name: str
    service: str
    probe: HealthModel


class NotifyTargetModel(Strict):
    """An apprise URL by reference (it holds tokens): `env:NAME`, `file:/path`, `dotenv:`."""

    url: SecretRef
    min_severity: Literal["info", "warning", "critical"] = "warning"
    # when it receives: always, in business hours (the team's chat), after hours (the pager)
    hours: Literal["always", "business", "after"] = "always"
    critical_any_time: bool = True  # a critical message ignores `hours` ("critical to both")


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = r"^([01]\d|2[0-3]):[0-5]\d$"


def parse_days(text: str) -> tuple[int, ...]:
    """`mon-fri`, `mon,wed,fri`, `sat-sun` -> weekday numbers (Monday 0)."""
    out: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"bad days {text!r}: use mon..sun, like mon-fri or mon,wed,fri")
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return tuple(sorted(out))


class BusinessHoursModel(Strict):
    days: str = "mon-fri"
    start: str = Field(default="09:00", pattern=_CLOCK)
    end: str = Field(default="18:00", pattern=_CLOCK)

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        parse_days(value)
        return value


class NotificationsModel(Strict):
    targets: list[NotifyTargetModel] = []
    time_zone: str = "UTC"  # the zone business hours are in (an IANA name: Europe/Berlin)
    business_hours: BusinessHoursModel = BusinessHoursModel()

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name, like Europe/Berlin or UTC"
            ) from None
        return value


class ContactModel(Strict):
    """Who to call in an incident (printed by `recover`, red `status` and the reports)."""

    name: str
    role: str = ""
    phone: str = ""
    email: str = ""
    chat: str = ""
    notes: str = ""


class ScheduleJobModel(Strict):
    """One job of `schedule:` (see docs/monitoring.md, Schedules)."""

    cron: str
    job: Literal["backup", "verify", "sync", "drill", "prune", "status-notify", "digest"]
    # backup only; all-set: `backup --all`, all-set-incremental: `backup --all --type incremental`
    type: Literal["base", "incremental", "logical", "all-set", "all-set-incremental"] = "base"
    services: list[str] = []  # backup only
    to: str | None = None  # sync only
    deep: bool = True  # verify only
    timeout: Duration = timedelta(hours=6)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(
                f"bad cron expression {value!r}: five fields (minute hour day month weekday), "
                "like '0 2 * * *'"
            )
        return value


class SetsModel(Strict):
    retention: RetentionModel = RetentionModel()
    # `backup --all` takes a fresh PostgreSQL base backup when the newest is older than this
    # (a nightly set then restores from that night's base); a younger one is reused.
    base_max_age: Duration = timedelta(hours=12)


class StackModel(Strict):
    version: Literal[1] = 1
    stack: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    state_dir: str | None = None
    host_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]+$")
    repository: str | None = None
    repositories: dict[str, RepositoryModel] = Field(min_length=1)
    encryption: EncryptionModel | None = None
    services: dict[str, ServiceModel] = Field(min_length=1)
    checks: list[CheckModel] = []
    smoke: list[SmokeModel] = []
    notifications: NotificationsModel = NotificationsModel()
    contacts: list[ContactModel] = []  # emergency contacts, in the order to call them
    escalation: list[str] = []  # the escalation path, one step a line
    schedule: dict[str, ScheduleJobModel] | None = None  # absent: the default jobs
    sets: SetsModel = SetsModel()  # stack-wide restore points (`drkit backup --all`)

    @model_validator(mode="after")
    def _references(self) -> StackModel:
        found: list[tuple[Loc, str]] = []
        repos = ", ".join(self.repositories)
        if self.repository is not None and self.repository not in self.repositories:
            found.append((("repository",), f"{self.repository!r} is not among repositories (known: {repos})"))
        for name, job in (self.schedule or {}).items():
            if not _JOB_NAME.match(name):
                found.append(
                    (("schedule", name), f"job name {name!r}: use a-z, 0-9, - and _ (it names units)")
                )
            if job.to is not None and job.to not in self.repositories:
                found.append(
                    (
                        ("schedule", name, "to"),
                        f"repository {job.to!r} is not among repositories (known: {repos})",
                    )
                )
            for svc in job.services:
                if svc not in self.services:
                    found.append(
                        (
                            ("schedule", name, "services"),
                            f"unknown service {svc!r} (known: {', '.join(self.services)})",
                        )
                    )
        if found:
            raise Problems(found)
        return self
