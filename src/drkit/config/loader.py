"""Load stack.yaml into a domain Stack; every error names the file, the line and the key."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from pydantic import ValidationError

from drkit.config.escalation import escalation
from drkit.config.models import (
    CheckModel,
    EncryptionModel,
    HealthModel,
    RetentionModel,
    ScheduleJobModel,
    ServiceModel,
    SmokeModel,
    StackModel,
    parse_size,
)
from drkit.config.replication import replication, runtime_spec
from drkit.config.secrets import SecretMissing, resolve_secret
from drkit.config.yaml_source import PositionedYaml
from drkit.domain.checks import Expectation, IntegrityCheck
from drkit.domain.errors import ConfigError
from drkit.domain.stack import (
    Encryption,
    HealthProbe,
    NotifyTarget,
    PostgresPolicy,
    Priority,
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


def find_config(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("DRKIT_CONFIG")
    if env:
        return Path(env)
    for name in DEFAULT_CONFIG_NAMES:
        if Path(name).is_file():
            return Path(name)
    raise ConfigError(
        "no configuration: pass --config PATH, set DRKIT_CONFIG, or run in a directory with stack.yaml",
        hint="`drkit init --preset nself` writes one; `drkit sandbox up` writes one for the sandbox",
    )


def load_stack(path: str | Path, *, strict_secrets: bool = True) -> Stack:
    """Parse and validate. With `strict_secrets=False` an unresolvable secret becomes None
    (used by wal-push/wal-fetch, which run as the database user in a bare environment)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration ({exc.strerror})") from exc
    try:
        source = PositionedYaml(text, str(path))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        model = StackModel.model_validate(source.data())
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
    return _to_domain(model, source, strict_secrets)


def _describe(exc: ValidationError, source: PositionedYaml) -> str:
    messages = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function")))
        key = ".".join(str(p) for p in loc) or "(top level)"
        line = source.line_of(loc)
        where = f"{source.path}:{line}" if line else source.path
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        msg = msg.removeprefix("Value error, ")
        messages.append(f"{where}: {key}: {msg}")
    first = messages[0]
    more = f" (and {len(messages) - 1} more problem(s))" if len(messages) > 1 else ""
    return first + more


def _secret(ref: str | None, loc: tuple[str | int, ...], source: PositionedYaml, strict: bool) -> str | None:
    if ref is None:
        return None
    try:
        return resolve_secret(ref)
    except SecretMissing as exc:
        if not strict:
            return None
        key = ".".join(str(p) for p in loc)
        raise ConfigError(f"{source.path}:{source.line_of(loc)}: {key}: {exc}") from exc


def _service(name: str, m: ServiceModel, source: PositionedYaml, strict: bool) -> Service:
    policy = None
    if m.kind == "postgres":
        b = m.backup
        if b is None:
            policy = PostgresPolicy()
        else:
            policy = PostgresPolicy(
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
    r = m.runtime
    health = None
    if m.health is not None:
        h = m.health
        health = _probe(h)
    return Service(
        name=name,
        kind=m.kind,
        runtime=runtime_spec(r),
        dsn=m.dsn,
        url=m.url,
        # hasura-auth's password is only its canary probe's: a missing one fails that probe
        # (which says so), not every command.
        password=_secret(m.password, ("services", name, "password"), source, strict and m.kind != "auth"),
        depends_on=tuple(m.depends_on),
        rto=m.rto,
        rpo=m.rpo,
        priority=Priority(m.priority),
        postgres=policy,
        health=health,
        retention=_retention(m),
        indexes=tuple(SearchIndex(n, i.query, i.primary_key) for n, i in m.indexes.items()),
        access_key=_secret(m.access_key, ("services", name, "access_key"), source, strict),
        secret_key=_secret(m.secret_key, ("services", name, "secret_key"), source, strict),
        buckets=tuple(m.buckets),
        replication=replication(
            name, m, _replication_password(name, m, source, strict), _patroni_auth(name, m, source, strict)
        ),
    )


def _patroni_auth(name: str, m: ServiceModel, source: PositionedYaml, strict: bool) -> str | None:
    ref = m.replication.patroni.auth if m.replication and m.replication.patroni else None
    return _secret(ref, ("services", name, "replication", "patroni", "auth"), source, strict)


def _replication_password(name: str, m: ServiceModel, source: PositionedYaml, strict: bool) -> str | None:
    ref = m.replication.password if m.replication else None
    return _secret(ref, ("services", name, "replication", "password"), source, strict)


def _retention(m: ServiceModel) -> Retention:
    return _retention_of(m.backup.retention if m.backup else RetentionModel())


def _retention_of(r: RetentionModel) -> Retention:
    return Retention(r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly)


def _to_domain(model: StackModel, source: PositionedYaml, strict: bool) -> Stack:
    for name, svc in model.services.items():
        for dep in svc.depends_on:
            if dep not in model.services:
                loc: tuple[str | int, ...] = ("services", name, "depends_on")
                raise ConfigError(
                    f"{source.path}:{source.line_of(loc)}: services.{name}.depends_on: "
                    f"unknown service {dep!r}"
                )
    repos = {
        name: RepositorySpec(
            name=name,
            type=r.type,
            path=_relative(r.path, source.path),
            endpoint=r.endpoint,
            bucket=r.bucket,
            prefix=r.prefix,
            access_key=_secret(r.access_key, ("repositories", name, "access_key"), source, strict),
            secret_key=_secret(r.secret_key, ("repositories", name, "secret_key"), source, strict),
            region=r.region,
            encryption=_encryption(r.encryption, ("repositories", name, "encryption"), source, strict),
            offsite=r.offsite,
            sign_key=_secret(r.sign_key, ("repositories", name, "sign_key"), source, strict),
            sign_key_ref=r.sign_key,
        )
        for name, r in model.repositories.items()
    }
    encryption = _encryption(model.encryption, ("encryption",), source, strict)
    services = with_inherited_rpo({n: _service(n, s, source, strict) for n, s in model.services.items()})
    state_dir = _relative(model.state_dir, source.path) or str(Path(source.path).resolve().parent / ".drkit")
    return Stack(
        name=model.stack,
        services=services,
        repositories=repos,
        primary_repository=model.repository or next(iter(repos)),
        encryption=encryption,
        source_path=str(Path(source.path).resolve()),
        state_dir=state_dir,
        host_id=model.host_id,
        checks=tuple(_check(c) for c in model.checks),
        smoke=tuple(_smoke(s, services, source) for s in model.smoke),
        notifications=_notify_targets(model, source, strict),
        schedule=_schedule(model.schedule),
        set_retention=_retention_of(model.sets.retention),
        set_base_max_age=model.sets.base_max_age,
        **escalation(model),
    )


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


def _notify_targets(model: StackModel, source: PositionedYaml, strict: bool) -> tuple[NotifyTarget, ...]:
    out = []
    for i, t in enumerate(model.notifications.targets):
        url = _secret(t.url, ("notifications", "targets", i, "url"), source, strict)
        if url is not None:
            out.append(NotifyTarget(url, Severity(t.min_severity), t.hours, t.critical_any_time))
    return tuple(out)


def _encryption(
    model: EncryptionModel | None, where: tuple[str | int, ...], source: PositionedYaml, strict: bool
) -> Encryption | None:
    if model is None:
        return None
    identity = _secret(model.identity, (*where, "identity"), source, strict)
    return Encryption(recipients=tuple(model.recipients), identity=identity)


def _probe(h: HealthModel) -> HealthProbe:
    return HealthProbe(h.type, h.target, h.expect_status, h.expect_body, h.timeout)


def _smoke(s: SmokeModel, services: dict[str, Service], source: PositionedYaml) -> SmokeCheck:
    if s.service not in services:
        raise ConfigError(
            f"{source.path}:{source.line_of(('smoke',)) or '?'}: smoke: check {s.name!r} names "
            f"unknown service {s.service!r}"
        )
    return SmokeCheck(s.name, s.service, _probe(s.probe))


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
