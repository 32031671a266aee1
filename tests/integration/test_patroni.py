"""A three-member Patroni cluster (Debian's patroni and etcd-server, PostgreSQL 15) in network
namespaces made here: `drkit replica status`, `drkit check`, `drkit switchover` and a failover
after the leader's link is cut all go through Patroni's REST API; drkit never promotes."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drkit.infra.wait import wait_for
from tests.integration.netns_helpers import os_user_exists
from tests.integration.patroni_helpers import MEMBERS, PatroniCluster, PNet, make_cluster

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("patroni") or not shutil.which("etcd") or not os_user_exists(),
    reason="needs root (ip netns), Debian's patroni and etcd-server, and the postgres user",
)


@pytest.fixture(scope="module")
def pc() -> Iterator[PatroniCluster]:
    net = PNet(f"drkpa{os.getpid() % 100000}")
    base = Path(tempfile.mkdtemp(prefix="drkit-patroni-"))
    made: list[PatroniCluster] = []
    try:
        net.up()
        made.append(make_cluster(base / "c", net))
        c = made[0]
        c.start_etcd()
        for name in MEMBERS:
            c.start(name)
        wait_for(c.healthy, timeout=120, what="the Patroni cluster to bootstrap", retry_on=(OSError,))
        yield c
    finally:
        if made:
            for name in MEMBERS:
                net.link(name, "up")
            made[0].stop_all()
        net.down()
        shutil.rmtree(base, ignore_errors=True)


def test_replica_status_and_check_read_patronis_view(pc: PatroniCluster) -> None:
    def caught_up() -> dict[str, Any] | None:
        status = pc.drkit("-o", "json", "replica", "status")
        assert status.code == 0, status.stdout + status.stderr
        found: dict[str, Any] = status.json()
        replicas = [m for m in found["members"] if m["name"] != found["leader"]]
        return found if all(m["lag_bytes"] == 0 for m in replicas) else None  # a checkpoint lags a moment

    data = wait_for(caught_up, timeout=60, what="drkit to show the replicas caught up")
    assert data["via"] == "patroni"
    assert data["leader"] == pc.leader()
    assert data["timeline"] == 1
    members = {m["name"]: m for m in data["members"]}
    assert set(members) == set(MEMBERS)
    for name, m in members.items():
        assert m["state"] == "running" and m["timeline"] == 1
        if name != data["leader"]:
            assert m["role"] == "replica" and m["lag_bytes"] == 0
    check = pc.drkit("-o", "json", "check")
    results = {r["name"]: r for r in check.json()["results"]}
    assert results["patroni:postgres"]["status"] == "ok", results
    assert f"leader {data['leader']}, timeline 1" in results["patroni:postgres"]["detail"]


def test_switchover_through_patroni(pc: PatroniCluster) -> None:
    old = pc.leader()
    target = next(n for n in MEMBERS if n != old)
    pc.psql(old, "create table t(n int); insert into t select generate_series(1, 1000)")
    started = time.monotonic()
    result = pc.drkit("-o", "json", "switchover", "--to", target)
    spent = time.monotonic() - started
    assert result.code == 0, result.stdout + result.stderr
    journal = result.json()
    assert journal["verdict"] == "passed", journal
    steps = {s["name"]: s for s in journal["steps"]}
    assert (
        steps["patroni-switchover"]["facts"]["timeline_after"]
        > steps["patroni-switchover"]["facts"]["timeline_before"]
    )
    assert pc.leader() == target
    view = {m["name"]: m for m in pc.cluster()["members"]}
    assert view[target]["timeline"] == 2
    assert pc.psql(target, "select count(*) from t") == "1000"
    assert pc.psql(target, "select pg_is_in_recovery()") == "f"
    assert steps["verify"]["status"] == "succeeded", steps["verify"]  # the old leader follows
    print(f"\npatroni switchover {old} -> {target}: {spent:.1f}s (drkit switchover, end to end)")


def test_failover_after_leader_link_cut_patroni_elects(pc: PatroniCluster) -> None:
    wait_for(pc.healthy, timeout=60, what="all three members streaming", retry_on=(OSError,))
    old = pc.leader()
    before = max(m.get("timeline") or 0 for m in pc.cluster()["members"])
    cut = datetime.now(UTC)
    pc.net.link(old, "down")
    try:
        result = pc.drkit("-o", "json", "failover", "--since", cut.isoformat(), timeout=150)
        assert result.code == 0, result.stdout + result.stderr
        journal = result.json()
        new = pc.leader()
        assert new != old
        steps = {s["name"]: s for s in journal["steps"]}
        assert steps["patroni-failover"]["facts"]["new_leader"] == new
        assert steps["patroni-failover"]["facts"]["timeline_after"] > before
        assert "elected it by itself" in steps["patroni-failover"]["detail"]
        measure = journal["measures"][0]
        assert 0 < measure["rto_seconds"] < 60
        assert pc.psql(new, "select pg_is_in_recovery()") == "f"
        print(f"\npatroni failover {old} -> {new}: RTO {measure['rto_seconds']:.1f}s (link cut to a write)")
    finally:
        pc.net.link(old, "up")
    # the old leader rejoins as a replica by Patroni's own doing (pg_rewind when needed)
    wait_for(pc.healthy, timeout=90, what=f"{old} to rejoin as a replica", retry_on=(OSError,))
    assert pc.leader() == new


def test_geo_failover_runbook_through_patroni_waits_for_an_operator(pc: PatroniCluster) -> None:
    wait_for(pc.healthy, timeout=60, what="all three members streaming", retry_on=(OSError,))
    old = pc.leader()
    cut = datetime.now(UTC)
    pc.net.link(old, "down")
    try:
        # no terminal, no --yes: the automatic steps run, the first manual one is not confirmed
        first = pc.drkit("-o", "json", "recover", "geo-failover", "--since", cut.isoformat(), timeout=150)
        assert first.code == 1, first.stdout + first.stderr
        steps = {s["name"]: s for s in first.json()["steps"]}
        assert steps["patroni-failover"]["status"] == "succeeded"
        assert steps["writable"]["status"] == "succeeded"
        assert steps["update-dns"]["status"] == "failed"
        assert "not confirmed by an operator" in steps["update-dns"]["detail"]
        new = pc.leader()
        assert new != old
        # --resume --yes: the manual steps are recorded as assumed, never as done
        again = pc.drkit("-o", "json", "recover", "--resume", "--yes", timeout=60)
        assert again.code == 0, again.stdout + again.stderr
        journal = again.json()
        steps = {s["name"]: s for s in journal["steps"]}
        for name in ("update-dns", "update-cdn", "notify-users", "monitor-errors", "update-status-page"):
            assert steps[name]["detail"].startswith("NOT CONFIRMED BY AN OPERATOR"), steps[name]
        measure = journal["measures"][0]
        assert 0 < measure["rto_seconds"] < 60
        assert "the users' RTO is not measured" in measure["detail"]
        assert pc.leader() == new
        print(f"\ngeo-failover {old} -> {new}: database RTO {measure['rto_seconds']:.1f}s")
    finally:
        pc.net.link(old, "up")
    wait_for(pc.healthy, timeout=90, what=f"{old} to rejoin as a replica", retry_on=(OSError,))
