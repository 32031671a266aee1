"""Load stack.yaml into a domain Stack; every error names the file, the line and the key."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drkit.config.escalation import escalation
from drkit.config.models import (
    CheckModel,
    EncryptionModel,
    HealthModel,
    Loc,
    RepositoryModel,
    RetentionModel,
    ScheduleJobModel,
    ServiceModel,
    StackModel,
    parse_size,
)
from drkit.config.problems import describe, located
from drkit.config.replication import replication, runtime_spec
from drkit.config.secrets import SecretMissing, resolve_secret
from drkit.config.storage import storage_policy
from drkit.config.yaml_source import PositionedYaml
from drkit.domain.checks import Expectation, IntegrityCheck
from drkit.domain.errors import ConfigError
from drkit.domain.stack import (
    Encryption,
    HealthProbe,
    NotifyTarget,
    PostgresPolicy,
    Priority,
    Replication,
    RepositorySpec,
    Retention,
    ScheduledJob,
    SearchIndex,
    Service,
    Severity,
    SmokeCheck,
    Stack,
    WalMode,
    with_inherited_rpo,
)

DEFAULT_CONFIG_NAMES = ("stack.yaml", "drkit.yaml")
SYSTEM_CONFIG = Path("/etc/drkit/stack.yaml")


def find_config(explicit: str | None, *, system: Path = SYSTEM_CONFIG) -> Path:
    """--config, else DRKIT_CONFIG, else stack.yaml (or drkit.yaml) in this directory, else
    /etc/drkit/stack.yaml (where a host-wide install keeps it)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("DRKIT_CONFIG")
    if env:
        return Path(env)
    for name in DEFAULT_CONFIG_NAMES:
        if Path(name).is_file():
            return Path(name)
    if system.is_file():
        return system
    raise ConfigError(
        f"no configuration: pass --config PATH, set DRKIT_CONFIG, run in a directory with "
        f"stack.yaml, or install one as {system}",
        hint="`drkit init --preset nself` writes one; `drkit sandbox up` writes one for the sandbox",
    )


def load_stack(path: str | Path, *, strict_secrets: bool = True) -> Stack:
    """Parse and validate; every problem found is reported at once (ConfigError.problems).
    With `strict_secrets=False` an unresolvable secret becomes None (used by wal-push and
    wal-fetch, which run as the database user in a bare environment)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory: give the stack.yaml file in it") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from exc
    source = PositionedYaml(text, str(path))
    data = source.data()
    dangling = _dangling(data, source)
    try:
        model = StackModel.model_validate(data)
    except ValidationError as exc:
        raise _error(source, describe(exc, source) + dangling) from exc
    if dangling:
        raise _error(source, dangling)
    build = _Build(source, strict_secrets)
    stack = build.stack(model)
    if build.problems:
        raise _error(source, build.problems)
    return stack


def _error(source: PositionedYaml, found: list[tuple[int | None, str]]) -> ConfigError:
    """One error holding every problem, in the file's order."""
    lines = tuple(text for _, text in sorted(found, key=lambda p: p[0] or 0))
    if len(lines) == 1:
        return ConfigError(lines[0], problems=lines)
    return ConfigError(f"{source.path}: {len(lines)} problems", problems=lines)


def _dangling(data: Any, source: PositionedYaml) -> list[tuple[int | None, str]]:
    """Services named by depends_on and smoke checks that the file does not define; read from
    the raw data, so they are reported together with every other problem."""
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return []
    known = ", ".join(str(k) for k in services)
    found = []
    for name, svc in services.items():
        deps = svc.get("depends_on") if isinstance(svc, dict) else None
        for dep in deps if isinstance(deps, list) else []:
            if isinstance(dep, str) and dep not in services:
                loc = ("services", name, "depends_on")
                found.append(located(source, loc, f"unknown service {dep!r} (known: {known})"))
    smoke = data.get("smoke")
    for i, check in enumerate(smoke if isinstance(smoke, list) else []):
        svc_name = check.get("service") if isinstance(check, dict) else None
        if isinstance(svc_name, str) and svc_name not in services:
            name = check.get("name", i)
            found.append(
                located(
                    source,
                    ("smoke", i, "service"),
                    f"check {name!r} names unknown service {svc_name!r} (known: {known})",
                )
            )
    return found


class _Build:
    """Models -> domain objects; secrets resolved, every one that cannot be is recorded."""

    def __init__(self, source: PositionedYaml, strict: bool) -> None:
        self.source = source
        self.strict = strict
        self.problems: list[tuple[int | None, str]] = []

    def secret(self, ref: str | None, loc: Loc, *, required: bool = True) -> str | None:
        if ref is None:
            return None
        try:
            return resolve_secret(ref)
        except SecretMissing as exc:
            if self.strict and required:
                self.problems.append(located(self.source, loc, f"{exc}: set it, or change the reference"))
            return None

    def stack(self, model: StackModel) -> Stack:
        repos = {name: self.repository(name, r) for name, r in model.repositories.items()}
        encryption = self.encryption(model.encryption, ("encryption",))
        services = with_inherited_rpo({n: self.service(n, s) for n, s in model.services.items()})
        path = self.source.path
        state_dir = _relative(model.state_dir, path) or str(Path(path).resolve().parent / ".drkit")
        return Stack(
            name=model.stack,
            services=services,
            repositories=repos,
            primary_repository=model.repository or next(iter(repos)),
            encryption=encryption,
            source_path=str(Path(path).resolve()),
            state_dir=state_dir,
            host_id=model.host_id,
            checks=tuple(_check(c) for c in model.checks),
            smoke=tuple(SmokeCheck(s.name, s.service, _probe(s.probe)) for s in model.smoke),
            notifications=self.notify_targets(model),
            schedule=_schedule(model.schedule),
            set_retention=_retention_of(model.sets.retention),
            set_base_max_age=model.sets.base_max_age,
            **escalation(model),
        )

    def repository(self, name: str, r: RepositoryModel) -> RepositorySpec:
        where: Loc = ("repositories", name)
        return RepositorySpec(
            name=name,
            type=r.type,
            path=_relative(r.path, self.source.path),
            endpoint=r.endpoint,
            bucket=r.bucket,
            prefix=r.prefix,
            access_key=self.secret(r.access_key, (*where, "access_key")),
            secret_key=self.secret(r.secret_key, (*where, "secret_key")),
            region=r.region,
            encryption=self.encryption(r.encryption, (*where, "encryption")),
            offsite=r.offsite,
            sign_key=self.secret(r.sign_key, (*where, "sign_key")),
            sign_key_ref=r.sign_key,
            storage=storage_policy(name, r, self.secret),
        )

    def service(self, name: str, m: ServiceModel) -> Service:
        where: Loc = ("services", name)
        return Service(
            name=name,
            kind=m.kind,
            runtime=runtime_spec(m.runtime),
            dsn=m.dsn,
            url=m.url,
            # hasura-auth's password is only its canary probe's: a missing one fails that probe
            # (which says so), not every command.
            password=self.secret(m.password, (*where, "password"), required=m.kind != "auth"),
            depends_on=tuple(m.depends_on),
            rto=m.rto,
            rpo=m.rpo,
            priority=Priority(m.priority),
            postgres=_postgres_policy(m) if m.kind == "postgres" else None,
            health=_probe(m.health) if m.health is not None else None,
            retention=_retention(m),
            indexes=tuple(SearchIndex(n, i.query, i.primary_key) for n, i in m.indexes.items()),
            access_key=self.secret(m.access_key, (*where, "access_key")),
            secret_key=self.secret(m.secret_key, (*where, "secret_key")),
            buckets=tuple(m.buckets),
            replication=self.replication(name, m),
        )

    def replication(self, name: str, m: ServiceModel) -> Replication | None:
        r = m.replication
        where: Loc = ("services", name, "replication")
        password = self.secret(r.password if r else None, (*where, "password"))
        patroni_ref = r.patroni.auth if r and r.patroni else None
        auth = self.secret(patroni_ref, (*where, "patroni", "auth"))
        try:
            return replication(name, m, password, auth)
        except ConfigError as exc:  # "services.NAME.replication...: what" or "replication...: what"
            key, _, what = exc.message.partition(": ")
            parts = key.split(".")
            loc: Loc = tuple(parts) if parts[0] == "services" else ("services", name, *parts)
            self.problems.append(located(self.source, loc, what or exc.message))
            return None

    def notify_targets(self, model: StackModel) -> tuple[NotifyTarget, ...]:
        out = []
        for i, t in enumerate(model.notifications.targets):
            url = self.secret(t.url, ("notifications", "targets", i, "url"))
            if url is not None:
                out.append(NotifyTarget(url, Severity(t.min_severity), t.hours, t.critical_any_time))
        return tuple(out)

    def encryption(self, model: EncryptionModel | None, where: Loc) -> Encryption | None:
        if model is None:
            return None
        identity = self.secret(model.identity, (*where, "identity"))
        return Encryption(recipients=tuple(model.recipients), identity=identity)


def _postgres_policy(m: ServiceModel) -> PostgresPolicy:
    b = m.backup
    if b is None:
        return PostgresPolicy()
    return PostgresPolicy(
        wal_mode=WalMode(b.wal_mode),
        slot=b.slot,
        checkpoint=b.checkpoint,
        databases=tuple(b.databases),
        compress_level=b.compress_level,
        parallel=b.parallel,
        part_size=parse_size(b.part_size),
        max_rate=b.max_rate,
        keep_daily=b.retention.keep_daily,
        keep_weekly=b.retention.keep_weekly,
        wal_retention=b.wal_retention,
    )


def _retention(m: ServiceModel) -> Retention:
    return _retention_of(m.backup.retention if m.backup else RetentionModel())


def _retention_of(r: RetentionModel) -> Retention:
    return Retention(r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly)


def _schedule(jobs: dict[str, ScheduleJobModel] | None) -> tuple[ScheduledJob, ...] | None:
    if jobs is None:
        return None
    return tuple(
        ScheduledJob(
            name=name,
            cron=j.cron,
            job=j.job,
            backup_type=j.type,
            services=tuple(j.services),
            to=j.to,
            deep=j.deep,
            timeout=j.timeout.total_seconds(),
        )
        for name, j in jobs.items()
    )


def _probe(h: HealthModel) -> HealthProbe:
    return HealthProbe(h.type, h.target, h.expect_status, h.expect_body, h.timeout)


def _check(c: CheckModel) -> IntegrityCheck:
    e = c.expect
    return IntegrityCheck(
        name=c.name,
        service=c.service,
        database=c.database,
        query=c.query,
        builtin=c.builtin,
        expect=Expectation(e.equals, e.at_most, e.at_least, e.equals_query, e.tolerance),
        critical=c.severity == "critical",
    )


def _relative(path: str | None, config_path: str) -> str | None:
    """An absolute path, resolved once here: relative to the configuration file's directory,
    and `~` to the home of the file's owner (not of whoever reads it: PostgreSQL's OS user
    runs wal-push and wal-fetch with the same file as root runs backups, and `~/backups` must
    name one directory for both)."""
    if path is None:
        return None
    p = Path(_expand_home(path, config_path))
    return str(p if p.is_absolute() else (Path(config_path).resolve().parent / p))


def _expand_home(path: str, config_path: str) -> str:
    if path != "~" and not path.startswith("~/"):
        return os.path.expanduser(path)  # `~user/...` names its user; anything else is as written
    try:
        home = pwd.getpwuid(Path(config_path).stat().st_uid).pw_dir
    except (OSError, KeyError):
        return os.path.expanduser(path)
    return home + path[1:]
