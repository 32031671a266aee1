"""Patroni without servers: the `replication.patroni` config, the REST client (a mock
transport: which member answers, the request bodies, the basic auth, Patroni's refusals),
and the view drkit's status and checks read (leader, lag, timeline)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from drkit.adapters.patroni import PatroniApi
from drkit.config.loader import load_stack
from drkit.domain.checks import Status
from drkit.domain.errors import ConfigError, OperationError
from drkit.engines.failover import patroni
from drkit.engines.failover.cluster import Cluster

STACK = """\
version: 1
stack: demo
repositories: {{local: {{type: fs, path: ./repo}}}}
services:
  postgres:
    kind: postgres
    dsn: host=10.0.0.1 port=5432 dbname=app user=postgres
    replication:
      patroni:
        rest: [{rest}]
        auth: env:PATRONI_TEST_AUTH
        timeout: 1s
        wait: 30s
"""
URLS = "http://10.0.0.1:8008, http://10.0.0.2:8008/"


def load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rest: str = URLS, auth: str = "drkit:pw"
) -> Cluster:
    monkeypatch.setenv("PATRONI_TEST_AUTH", auth)
    path = tmp_path / "stack.yaml"
    path.write_text(STACK.format(rest=rest))
    svc = load_stack(path).service("postgres")
    assert svc.replication is not None
    return Cluster(svc, svc.replication, tmp_path)


def test_patroni_config_needs_no_standbys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = load(tmp_path, monkeypatch).replication.patroni
    assert p is not None
    assert p.rest == ("http://10.0.0.1:8008", "http://10.0.0.2:8008")
    assert p.auth == "drkit:pw" and p.timeout == 1.0 and p.wait == 30.0
    with pytest.raises(ConfigError, match="not http"):
        load(tmp_path, monkeypatch, rest="10.0.0.1:8008")
    with pytest.raises(ConfigError, match="user:password"):
        load(tmp_path, monkeypatch, auth="nocolon")


def test_replication_needs_standbys_or_patroni(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(
        STACK.format(rest=URLS).split("      patroni:", maxsplit=1)[0] + "      user: replicator\n"
    )
    with pytest.raises(ConfigError, match="standbys"):
        load_stack(path)


MEMBERS = [
    {"name": "m1", "role": "replica", "state": "running", "host": "10.0.0.1", "port": 5432,
     "api_url": "http://10.0.0.1:8008/patroni", "timeline": 2, "lag": 0},
    {"name": "m2", "role": "leader", "state": "running", "host": "10.0.0.2", "port": 5432,
     "api_url": "http://10.0.0.2:8008/patroni", "timeline": 2},
    {"name": "m3", "role": "replica", "state": "running", "host": "10.0.0.3", "port": 5432,
     "api_url": "http://10.0.0.3:8008/patroni", "timeline": 2, "lag": "unknown"},
]  # fmt: skip


class Fake:
    """Member 10.0.0.1 is down; the others answer as Patroni 3 does."""

    def __init__(self, members: list[dict[str, Any]] = MEMBERS, post: tuple[int, str] = (200, "ok")) -> None:
        self.members, self.post = members, post
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "10.0.0.1":
            raise httpx.ConnectError("unreachable", request=request)
        if request.method == "POST":
            return httpx.Response(self.post[0], text=self.post[1])
        if request.url.path == "/cluster":
            return httpx.Response(200, json={"members": self.members})
        xlog = {"received_location": 1, "replayed_location": 1, "replayed_timestamp": None, "paused": False}
        return httpx.Response(200, json={"state": "running", "role": "replica", "xlog": xlog, "timeline": 2})


def api(fake: Fake) -> PatroniApi:
    urls = ("http://10.0.0.1:8008", "http://10.0.0.2:8008")
    return PatroniApi(urls, "drkit:pw", timeout=1, transport=httpx.MockTransport(fake))


def test_cluster_from_the_first_member_that_answers() -> None:
    fake = Fake()
    seen = patroni.view(api(fake))
    assert [str(r.url) for r in fake.requests] == [
        "http://10.0.0.1:8008/cluster",
        "http://10.0.0.2:8008/cluster",
    ]
    assert seen.leader is not None and seen.leader.name == "m2" and seen.timeline == 2
    m3 = seen.member("m3")
    assert m3 is not None and m3.lag_bytes is None  # "unknown"


def test_switchover_and_failover_bodies_and_auth() -> None:
    fake = Fake(post=(200, 'Successfully switched over to "m3"'))
    client = api(fake)
    assert client.switchover("m2", "m3", timeout=5) == 'Successfully switched over to "m3"'
    assert client.failover("m3", timeout=5).startswith("Successfully")
    posts = [r for r in fake.requests if r.method == "POST" and r.url.host != "10.0.0.1"]
    assert [(r.url.path, json.loads(r.content)) for r in posts] == [
        ("/switchover", {"leader": "m2", "candidate": "m3"}),
        ("/failover", {"candidate": "m3"}),
    ]
    assert posts[0].headers["authorization"] == "Basic " + base64.b64encode(b"drkit:pw").decode()


def test_patroni_refusal_is_an_error_with_its_reason() -> None:
    client = api(Fake(post=(412, "candidate name does not match with sync_standby")))
    with pytest.raises(OperationError, match="412: candidate name does not match"):
        client.switchover("m2", "m1", timeout=5)
    with pytest.raises(OperationError, match="credentials"):
        api(Fake(post=(401, "no auth header received"))).failover("m3", timeout=5)


def test_no_member_answers() -> None:
    client = PatroniApi(("http://10.0.0.1:8008",), timeout=1, transport=httpx.MockTransport(Fake()))
    with pytest.raises(OperationError, match="no Patroni REST API answers"):
        client.cluster()


def checks_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, members: list[dict[str, Any]]
) -> dict[str, Any]:
    cluster = load(tmp_path, monkeypatch)
    monkeypatch.setattr(patroni, "api", lambda _c: api(Fake(members)))
    return {r.name: r for r in patroni.checks(cluster)}


def test_checks_read_patronis_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = checks_with(tmp_path, monkeypatch, MEMBERS)
    assert found["patroni:postgres"].status is Status.OK
    assert "leader m2, timeline 2" in found["patroni:postgres"].detail
    assert found["patroni:postgres:m3"].status is Status.WARNING  # lag unknown
    assert "patroni:postgres:m1" not in found
    no_leader = [{**m, "role": "replica"} for m in MEMBERS]
    found = checks_with(tmp_path, monkeypatch, no_leader)
    assert found["patroni:postgres"].status is Status.FAILED
    assert "no running leader" in found["patroni:postgres"].detail


def test_the_lost_leader_when_patroni_already_elected_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from drkit.engines.failover.patroni_switch import _lost

    cluster = load(tmp_path, monkeypatch)
    seen = patroni.view(api(Fake()))
    members = {m.name: m for m in seen.members}
    assert _lost(cluster, seen.leader, members) == ("m2", 2)  # nothing recorded: Patroni's leader
    cluster.record_primary("m3", datetime.now(UTC), "patroni switchover")
    assert _lost(cluster, seen.leader, members) == ("m3", 1)  # m2 leads on 2: m3 led on 1
    cluster.record_primary("m2", datetime.now(UTC), "patroni switchover")
    assert _lost(cluster, seen.leader, members) == ("m2", 2)
    cluster.state_file.unlink()
    with pytest.raises(OperationError, match="which one was lost"):
        _lost(cluster, None, members)
