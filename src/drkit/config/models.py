"""The schema of stack.yaml. Unknown keys are errors (extra="forbid"), durations are checked."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from drkit.domain.durations import parse_duration


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


Duration = Annotated[timedelta, BeforeValidator(_duration)]
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
    volume: str | None = None  # compose: the named volume holding the service's data


class RetentionModel(Strict):
    keep_last: int | None = Field(default=None, ge=1)
    keep_daily: int = Field(default=30, ge=0)
    keep_weekly: int = Field(default=12, ge=0)


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
    dsn: str | None = None
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


class RepositoryModel(Strict):
    type: Literal["fs", "s3"]
    path: str | None = None
    endpoint: str | None = None
    bucket: str | None = None
    prefix: str = ""
    access_key: SecretRef | None = None
    secret_key: SecretRef | None = None
    region: str = "us-east-1"


class EncryptionModel(Strict):
    recipients: list[str] = Field(min_length=1)
    identity: SecretRef | None = None


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

    @model_validator(mode="after")
    def _references(self) -> StackModel:
        if self.repository is not None and self.repository not in self.repositories:
            raise ValueError(f"repository {self.repository!r} is not among repositories")
        return self
