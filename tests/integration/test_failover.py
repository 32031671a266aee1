"""Standby, switchover and failover between hosts in network namespaces made here: a real
PostgreSQL in each, pgbouncer in front (client namespace), a continuous writer through it."""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from drkit.infra.wait import wait_for
from tests.integration.netns_helpers import HOSTS, REPL_PW, Net, Pair, Writer, make_pair, os_user_exists

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("pgbouncer") or not os_user_exists(),
    reason="needs root (ip netns), pgbouncer and the postgres user",
)


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    n = Net(f"drkfo{os.getpid() % 100000}")
    try:
        n.up()
        yield n
    finally:
        n.down()


@pytest.fixture
def pair(net: Net, request: pytest.FixtureRequest) -> Iterator[Pair]:
    options = getattr(request, "param", {})
    base = Path(tempfile.mkdtemp(prefix="drkit-failover-"))  # the postgres user must reach it
    root = base / "c"
    made: list[Pair] = []
    try:
        made.append(make_pair(root, net, **options))
        result = made[0].drkit("replica", "init", "pg2")
        assert result.code == 0, result.stderr
        yield made[0]
    finally:
        for link in ("p1", "p2"):
            net.link(link, "up")
        if made:
            made[0].stop_all()
        else:  # make_pair failed half way: stop what it started
            Pair(root, net, root / "stack.yaml", "/usr/lib/postgresql/15/bin").stop_all()
        shutil.rmtree(base, ignore_errors=True)


def _secs(step: dict[str, str]) -> str:
    if not step.get("started_at") or not step.get("finished_at"):
        return "-"
    spent = datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(step["started_at"])
    return f"{spent.total_seconds():.1f}s"


def wait_rows(pair: Pair, host: str, at_least: int) -> None:
    wait_for(
        lambda: pair.query(host, "select count(*) from w") >= at_least,
        timeout=30,
        what=f"{at_least} rows on {host}",
        retry_on=(psycopg.OperationalError,),
    )


@pytest.mark.parametrize("pair", [{"synchronous": True}], indirect=True)
def test_replica_init_streams_with_slot_and_passfile(pair: Pair) -> None:
    status = pair.drkit("-o", "json", "replica", "status")
    assert status.code == 0, status.stderr
    data = status.json()
    members = {m["name"]: m for m in data["members"]}
    assert data["primary"] == "postgres"
    assert members["pg2"]["role"] == "standby"
    assert members["pg2"]["state"] == "streaming"
    assert members["pg2"]["slot_active"] is True
    assert members["pg2"]["sync_state"] == "sync"  # synchronous: true
    assert pair.query("p1", "show synchronous_standby_names") == "FIRST 1 (pg2)"
    assert isinstance(members["pg2"]["lag_bytes"], int)
    auto = (pair.data_dir("p2") / "postgresql.auto.conf").read_text()
    assert "passfile=" in auto and "primary_slot_name = 'pg2'" in auto and "wal-fetch" in auto
    assert REPL_PW not in auto and "s3cret" not in auto
    assert (pair.data_dir("p2") / "standby.signal").exists()
    passfile = pair.root / "p2" / "pg2.replication.pgpass"
    assert passfile.stat().st_mode & 0o777 == 0o600


def test_switchover_loses_no_acknowledged_transaction(pair: Pair) -> None:
    writer = Writer(pair.pooled)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) >= 50, timeout=30, what="the writer's first commits")
        result = pair.drkit("-o", "json", "switchover", "--to", "pg2")
        assert result.code == 0, result.stdout + result.stderr
        acked_at_switch = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= acked_at_switch + 50, timeout=30, what="commits after")
    finally:
        writer.stop()
    journal = result.json()
    assert journal["verdict"] == "passed", journal
    assert journal["measures"][0]["rpo_seconds"] == 0.0
    print(
        f"\nswitchover: writers paused {journal['measures'][0]['rto_seconds']:.1f}s, "
        f"{len(writer.acked)} commits acknowledged"
    )
    assert pair.query("p2", "select pg_is_in_recovery()") is False
    rows = pair.query("p2", "select count(*) from w")
    assert rows == len(writer.acked), (rows, len(writer.acked), writer.errors)
    # the old primary follows as a standby, streaming from the new one
    assert pair.query("p1", "select pg_is_in_recovery()") is True
    state = pair.query("p2", "select state from pg_stat_replication where application_name = 'postgres'")
    assert state == "streaming"
    wait_rows(pair, "p1", rows)


def test_failover_after_link_cut_writer_continues(pair: Pair) -> None:
    writer = Writer(pair.pooled)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) >= 50, timeout=30, what="the writer's first commits")
        cut = time.time()
        pair.net.link("p1", "down")
        since = datetime.fromtimestamp(cut, UTC).isoformat()
        result = pair.drkit("-o", "json", "failover", "--to", "pg2", "--since", since)
        assert result.code == 0, result.stdout + result.stderr
        wait_for(lambda: writer.first_ack_on(HOSTS["p2"]), timeout=30, what="a commit on the new primary")
        acked = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= acked + 20, timeout=30, what="more commits")
    finally:
        writer.stop()
    first = writer.first_ack_on(HOSTS["p2"])
    assert first is not None
    rto = first - cut
    journal = result.json()
    measure = journal["measures"][0]
    steps = ", ".join(f"{st['name']} {_secs(st)}" for st in journal["steps"])
    print(f"\nfailover steps: {steps}")
    print(
        f"failover: writer committing on the new primary {rto:.1f}s after the link cut; "
        f"journal RTO {measure['rto_seconds']:.1f}s, RPO {measure['rpo_seconds']}s ({measure['detail']})"
    )
    assert rto < 20, rto
    assert measure["rto_seconds"] is not None and measure["rto_seconds"] < 20
    assert measure["rpo_seconds"] is not None
    assert journal["failure_at"] is not None
    assert pair.query("p2", "select pg_is_in_recovery()") is False
    present = pair.query("p2", "select count(*) from w")
    have = set(pair.rows("p2", "select n from w"))
    missing = [(n, at, addr) for n, at, addr in writer.acked if n not in have]
    # asynchronous replication: only commits acknowledged by the old primary within the
    # measured RPO before its loss may be missing, and the journal's RPO covers them
    assert all(addr == HOSTS["p1"] and cut - at <= measure["rpo_seconds"] + 0.05 for n, at, addr in missing)
    assert not missing or measure["rpo_seconds"] > 0
    print(f"failover: {len(missing)} acknowledged commit(s) lost (asynchronous replication)")
    # the old primary, link back: stopped (fenced), and marked to come back read-only
    pair.net.link("p1", "up")
    with pytest.raises(psycopg.OperationalError):
        pair.query("p1", "select 1")
    assert (pair.data_dir("p1") / "standby.signal").exists()
    # the other repoints: the env file and the hook name the new primary
    assert "POSTGRES_HOST=10.200.0.2\n" in (pair.root / "app.env").read_text()
    assert (pair.root / "hook.out").read_text() == "pg2 10.200.0.2"
    # and it rejoins as a standby (pg_rewind, then streaming)
    rejoin = pair.drkit("replica", "rejoin", "postgres")
    assert rejoin.code == 0, rejoin.stdout + rejoin.stderr
    assert pair.query("p1", "select pg_is_in_recovery()") is True
    wait_rows(pair, "p1", present)


@pytest.mark.parametrize("pair", [{"rpo": "2s"}], indirect=True)
def test_failover_refused_beyond_rpo_then_forced(pair: Pair) -> None:
    pair.query("p1", "insert into w (n) values (0)")
    wait_rows(pair, "p2", 1)  # a transaction replayed: the standby's lag is measurable
    pair.query("p2", "select pg_wal_replay_pause()")
    with psycopg.connect(pair.sock("p1"), autocommit=True) as conn:
        for n in range(1, 101):
            conn.execute("insert into w (n) values (%s)", (n,))
    lag_sql = (
        "select extract(epoch from now() - pg_last_xact_replay_timestamp()) "
        "from (select 1) x where pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()"
    )
    wait_for(lambda: (pair.query("p2", lag_sql) or 0) > 3, timeout=30, what="the standby to lag > 3s")
    pair.net.link("p1", "down")
    refused = pair.drkit("failover", "--to", "pg2")
    assert refused.code == 1, refused.stdout + refused.stderr
    assert "beyond the 2s RPO target" in refused.stdout + refused.stderr
    assert pair.query("p2", "select pg_is_in_recovery()") is True  # nothing was promoted
    forced = pair.drkit("-o", "json", "failover", "--to", "pg2", "--force")
    assert forced.code in (0, 4), forced.stdout + forced.stderr
    assert pair.query("p2", "select pg_is_in_recovery()") is False
    assert pair.query("p2", "select count(*) from w") == 101  # received WAL replayed at promotion
    check = json.loads(forced.stdout)["steps"][1]
    assert "forced" in check["detail"]


def test_one_probe_blip_does_not_trigger_failover(pair: Pair) -> None:
    pair.net.link("p1", "down")
    proc = pair.popen_drkit("failover", "--to", "pg2")
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True)
    reader.start()
    seen: list[str] = []

    def first_probe_failed() -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any("probe 1/3: primary down" in line for line in seen)

    try:
        wait_for(first_probe_failed, timeout=30, what="the first failed probe")
    finally:
        pair.net.link("p1", "up")
    proc.wait(60)
    reader.join(10)
    first_probe_failed()  # what it said after
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 1, "".join(seen) + stderr
    assert "answered probe" in "".join(seen) + stderr
    assert pair.query("p1", "select pg_is_in_recovery()") is False
    assert pair.query("p2", "select pg_is_in_recovery()") is True
    assert not (Path(pair.root) / "state" / "replication" / "postgres.json").exists()
