"""stack.yaml's `replication:` block of a PostgreSQL service into the domain's Replication."""

from __future__ import annotations

import re

from drkit.config.models import PatroniModel, ReplicationModel, RuntimeModel, ServiceModel
from drkit.domain.errors import ConfigError
from drkit.domain.stack import FailoverPolicy, Member, Patroni, Replication, Repoint, RuntimeSpec


def runtime_spec(r: RuntimeModel) -> RuntimeSpec:
    return RuntimeSpec(
        type=r.type,
        container=r.container,
        unit=r.unit,
        data_dir=r.data_dir,
        bin_dir=r.bin_dir,
        port=r.port,
        os_user=r.os_user,
        log_file=r.log_file,
        command=tuple(r.command),
        stop_timeout=r.stop_timeout.total_seconds() if r.stop_timeout else None,
        exec_prefix=tuple(r.exec_prefix),
        volume=r.volume,
        mount=r.mount,
        env_file=r.env_file,
    )


def default_slot(member: str) -> str:
    """A replication slot name for a member: lower case, [a-z0-9_] only."""
    return re.sub(r"[^a-z0-9_]", "_", member.lower())[:63]


def patroni(p: PatroniModel | None, auth: str | None) -> Patroni | None:
    """`replication.patroni`: the REST API of each member, its basic auth (user:password)."""
    if p is None:
        return None
    for url in p.rest:
        if not re.match(r"^https?://[^/\s]+/?$", url):
            raise ConfigError(f"replication.patroni.rest: {url!r} is not http(s)://host:port")
    if auth is not None and ":" not in auth:
        raise ConfigError("replication.patroni.auth: the secret must be user:password")
    return Patroni(
        tuple(u.rstrip("/") for u in p.rest), auth, p.timeout.total_seconds(), p.wait.total_seconds()
    )


def replication(
    name: str, m: ServiceModel, password: str | None, patroni_auth: str | None = None
) -> Replication | None:
    """None without a `replication:` block. The configured primary is the first member."""
    r: ReplicationModel | None = m.replication
    if r is None:
        return None
    if not m.dsn:
        raise ConfigError(f"services.{name}.replication: the service needs a dsn (its primary)")
    if name in r.standbys:
        raise ConfigError(f"services.{name}.replication.standbys: a standby cannot be named {name!r}")
    primary = Member(name, m.dsn, runtime_spec(m.runtime), r.slot or default_slot(name), r.synchronous)
    standbys = tuple(
        Member(n, s.dsn, runtime_spec(s.runtime), s.slot or default_slot(n), s.synchronous)
        for n, s in r.standbys.items()
    )
    f = r.failover
    return Replication(
        members=(primary, *standbys),
        user=r.user,
        password=password,
        restore_from_archive=r.restore_from_archive,
        patroni=patroni(r.patroni, patroni_auth),
        failover=FailoverPolicy(
            probes=f.probes,
            window=f.window.total_seconds(),
            probe_timeout=f.probe_timeout.total_seconds(),
            max_lag=f.max_lag.total_seconds() if f.max_lag is not None else None,
            fencing=f.fencing,
            pause=tuple(f.pause),
            repoint=tuple(
                Repoint(
                    type=p.type,
                    path=p.path,
                    key=p.key,
                    format=p.format,
                    restart=tuple(p.restart),
                    databases=tuple(p.databases),
                    admin_dsn=p.admin_dsn,
                    socket=p.socket,
                    backend=p.backend,
                    server=p.server,
                    command=tuple(p.command),
                )
                for p in f.repoint
            ),
        ),
    )
