"""The members of a replicated PostgreSQL service: how to reach and run each, and which one
is the primary now (asked of the members, with the last switch drkit made as the tie-break)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg import conninfo

from drkit.adapters.postgres.client import connect, first_line, make_dsn
from drkit.domain.errors import DrkitError, OperationError, UsageError
from drkit.domain.stack import Member, Replication, Service
from drkit.engines.core.workspace import Workspace
from drkit.infra.atomic import write_atomic
from drkit.runtimes.factory import runtime_for
from drkit.runtimes.port import Runtime


@dataclass(frozen=True)
class Probe:
    """One look at a member: up or not, standby or primary, where its WAL is."""

    member: str
    up: bool
    in_recovery: bool | None = None
    lsn: int | None = None  # primary: current WAL end; standby: max(received, replayed)
    error: str = ""


@dataclass(frozen=True)
class Cluster:
    service: Service
    replication: Replication
    state_dir: Path

    def member(self, name: str) -> Member:
        try:
            return self.replication.member(name)
        except KeyError:
            known = ", ".join(m.name for m in self.replication.members)
            raise UsageError(f"{self.service.name} has no member {name!r} (known: {known})") from None

    def dsn(self, member: Member, **overrides: Any) -> str:
        return make_dsn(member.dsn, password=self.service.password, **overrides)

    def runtime(self, member: Member) -> Runtime:
        return runtime_for(Service(name=member.name, kind="postgres", runtime=member.runtime), self.state_dir)

    def host_port(self, member: Member) -> tuple[str, int]:
        params = conninfo.conninfo_to_dict(member.dsn)
        return str(params.get("host") or "localhost"), int(params.get("port") or 5432)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "replication" / f"{self.service.name}.json"

    def recorded_primary(self) -> str | None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        name = data.get("primary") if isinstance(data, dict) else None
        return str(name) if name in {m.name for m in self.replication.members} else None

    def record_primary(self, name: str, at: datetime, how: str) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        body = {"primary": name, "since": at.isoformat(), "by": how}
        write_atomic(self.state_file, json.dumps(body, indent=2).encode())


def cluster_of(ws: Workspace, service: str | None = None) -> Cluster:
    svc = ws.postgres(service)
    if svc.replication is None:
        raise UsageError(
            f"service {svc.name} has no replication block in {ws.stack.source_path}",
            hint="add services.<name>.replication.standbys (docs/failover.md)",
        )
    return Cluster(svc, svc.replication, ws.state_dir)


def parse_lsn(text: str | None) -> int | None:
    if not text:
        return None
    high, _, low = str(text).partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def format_lsn(value: int | None) -> str:
    return "-" if value is None else f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


PROBE_SQL = """
select pg_is_in_recovery(),
       case when pg_is_in_recovery()
            then greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text
            else pg_current_wal_lsn()::text end
"""


def unreachable(cluster: Cluster, member: Member, timeout: float) -> str:
    """Why a TCP connection to the member fails within `timeout` ("" when it connects, or
    for a Unix socket)."""
    host, port = cluster.host_port(member)
    if host.startswith("/"):
        return ""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    return ""


def probe(cluster: Cluster, member: Member, timeout: float = 3.0) -> Probe:
    """A TCP connect within `timeout` first (libpq's connect_timeout is 2 s at least), then
    the question to PostgreSQL itself."""
    why = unreachable(cluster, member, timeout)
    if why:
        return Probe(member.name, False, error=why)
    dsn = cluster.dsn(member, connect_timeout=max(2, round(timeout)))
    try:
        with connect(dsn) as conn:
            row = conn.execute(PROBE_SQL).fetchone()
    except (DrkitError, OSError) as exc:
        return Probe(member.name, False, error=first_line(exc))
    if row is None:
        return Probe(member.name, False, error="no answer")
    return Probe(member.name, True, bool(row[0]), parse_lsn(row[1]))


def current_primary(cluster: Cluster, probes: dict[str, Probe] | None = None) -> Member:
    """The member that answers as a primary; two answering is a split brain (the one drkit
    last promoted wins only when it is among them); none: the last one drkit recorded."""
    seen = probes or {m.name: probe(cluster, m) for m in cluster.replication.members}
    primaries = [n for n, p in seen.items() if p.up and p.in_recovery is False]
    recorded = cluster.recorded_primary()
    if len(primaries) == 1:
        return cluster.member(primaries[0])
    if len(primaries) > 1:
        if recorded in primaries:
            return cluster.member(recorded)
        raise OperationError(f"several members answer as primary: {', '.join(primaries)} (split brain)")
    return cluster.member(recorded or cluster.replication.members[0].name)


def sync_names(cluster: Cluster, primary: str, *, up: set[str] | None = None) -> str:
    """synchronous_standby_names for `primary`: its synchronous standbys (that are up)."""
    names = [
        m.name
        for m in cluster.replication.members
        if m.synchronous and m.name != primary and (up is None or m.name in up)
    ]
    return f"FIRST 1 ({', '.join(_ident(n) for n in names)})" if names else ""


def _ident(name: str) -> str:
    return name if name.replace("_", "").isalnum() and name.islower() else '"' + name.replace('"', '""') + '"'
