"""A PostgreSQL service that Patroni runs: its view of the cluster (leader, members, lag,
timeline) through the REST API, for `drkit replica status` and `drkit check`. drkit never
decides who leads: Patroni's consensus (its DCS) does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from drkit.adapters.patroni import PatroniApi
from drkit.adapters.postgres.client import make_dsn
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError, OperationError
from drkit.domain.stack import Member, Patroni
from drkit.engines.failover.cluster import Cluster

RUNNING = ("running", "streaming")


@dataclass(frozen=True)
class PatroniMember:
    name: str
    role: str  # leader | replica | sync_standby | standby_leader
    state: str  # running | streaming | stopped | starting | ...
    host: str
    port: int
    api_url: str
    timeline: int | None = None
    lag_bytes: int | None = None  # behind the leader (Patroni's "lag"); None: unknown
    replay_age: float | None = None  # seconds since the last transaction replayed
    paused: bool | None = None  # replay paused
    error: str = ""

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class View:
    members: tuple[PatroniMember, ...]
    paused: bool = False  # Patroni's maintenance mode
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def leader(self) -> PatroniMember | None:
        found = [m for m in self.members if m.role in ("leader", "standby_leader") and m.running]
        return found[0] if len(found) == 1 else None

    @property
    def timeline(self) -> int | None:
        return self.leader.timeline if self.leader else None

    def member(self, name: str) -> PatroniMember | None:
        return next((m for m in self.members if m.name == name), None)


def settings(cluster: Cluster) -> Patroni:
    p = cluster.replication.patroni
    if p is None:
        raise OperationError(f"{cluster.service.name} is not run by Patroni (no replication.patroni)")
    return p


def api(cluster: Cluster) -> PatroniApi:
    p = settings(cluster)
    return PatroniApi(p.rest, p.auth, timeout=p.timeout)


def view(client: PatroniApi) -> View:
    data = client.cluster()
    return View(tuple(_member(m) for m in data["members"]), bool(data.get("pause")), data)


def _member(m: dict[str, Any]) -> PatroniMember:
    lag = m.get("lag")
    return PatroniMember(
        name=str(m.get("name")),
        role=str(m.get("role", "")),
        state=str(m.get("state", "")),
        host=str(m.get("host", "")),
        port=int(m.get("port") or 5432),
        api_url=str(m.get("api_url", "")),
        timeline=int(m["timeline"]) if m.get("timeline") is not None else None,
        lag_bytes=int(lag) if isinstance(lag, int) else None,
    )


def detailed(client: PatroniApi, seen: View, now: Callable[[], datetime]) -> View:
    """Each member's own /patroni too: replay paused, age of the last replayed transaction."""
    out = []
    for m in seen.members:
        try:
            mine = client.member(m.api_url) if m.api_url else {}
        except DrkitError as exc:
            out.append(_with(m, error=exc.message))
            continue
        xlog = mine.get("xlog") or {}
        at = xlog.get("replayed_timestamp")
        age = (now() - datetime.fromisoformat(str(at))).total_seconds() if at else None
        out.append(_with(m, replay_age=age, paused=xlog.get("paused")))
    return View(tuple(out), seen.paused, seen.raw)


def _with(m: PatroniMember, **changes: Any) -> PatroniMember:
    return PatroniMember(**{**m.__dict__, **changes})


def status(cluster: Cluster) -> View:
    client = api(cluster)
    try:
        return detailed(client, view(client), lambda: datetime.now(UTC))
    finally:
        client.close()


def as_member(cluster: Cluster, m: PatroniMember) -> Member:
    """A Patroni member as drkit reaches it: the service's dsn at the member's host and port."""
    dsn = make_dsn(cluster.service.dsn or "", host=m.host, port=m.port)
    return Member(m.name, dsn, cluster.service.runtime, slot="")


def checks(cluster: Cluster, max_lag_bytes: int = 16 << 20) -> list[CheckResult]:
    """`drkit check` for a Patroni cluster: a leader, every member running, replicas' lag."""
    name = f"patroni:{cluster.service.name}"
    try:
        seen = status(cluster)
    except DrkitError as exc:
        return [CheckResult(name, Status.FAILED, exc.message)]
    leader = seen.leader
    if leader is None:
        return [CheckResult(name, Status.FAILED, f"no running leader: {describe(seen)}")]
    out = [
        CheckResult(name, Status.OK, f"leader {leader.name}, timeline {leader.timeline}: {describe(seen)}")
    ]
    if seen.paused:
        out.append(
            CheckResult(f"{name}:maintenance", Status.WARNING, "Patroni is paused: no automatic failover")
        )
    for m in seen.members:
        if m is leader:
            continue
        if not m.running:
            out.append(
                CheckResult(f"{name}:{m.name}", Status.WARNING, f"{m.state or 'unknown'} {m.error}".strip())
            )
        elif m.lag_bytes is None or m.lag_bytes > max_lag_bytes:
            lag = "unknown" if m.lag_bytes is None else f"{m.lag_bytes} bytes"
            out.append(CheckResult(f"{name}:{m.name}", Status.WARNING, f"lag {lag} behind {leader.name}"))
        elif m.timeline != leader.timeline:
            out.append(
                CheckResult(
                    f"{name}:{m.name}", Status.WARNING, f"timeline {m.timeline}, leader's {leader.timeline}"
                )
            )
    return out


def describe(seen: View) -> str:
    return ", ".join(
        f"{m.name} {m.role} {m.state}" + ("" if m.lag_bytes is None else f" lag {m.lag_bytes}B")
        for m in seen.members
    )
