"""Standby, switchover and failover between hosts in network namespaces made here: a real
PostgreSQL in each, pgbouncer in front (client namespace), a continuous writer through it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drkit.infra.wait import wait_for
from tests.integration.netns_helpers import (
    HOSTS,
    PORTS,
    REPL_PW,
    Ack,
    Net,
    Pair,
    Writer,
    make_pair,
    os_user_exists,
)

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
            net.unthrottle(link)
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
        timeout=60,
        what=f"{at_least} rows on {host}",
        retry_on=(psycopg.OperationalError,),
    )


@pytest.mark.parametrize("pair", [{"synchronous": True, "checksums": False}], indirect=True)
def test_replica_init_then_rewind_prerequisites_switchover_failover_and_rebuild(pair: Pair) -> None:
    """A cluster without data checksums or wal_log_hints (pg_rewind cannot rewind it): `check`
    says so; a switchover needs no rewind (a clean stop); after a failover the former primary
    cannot be rewound: rejoin says how, and `--rebuild` copies it afresh (old data kept)."""
    status = pair.drkit("-o", "json", "replica", "status")
    assert status.code == 0, status.stderr
    data = status.json()
    members = {m["name"]: m for m in data["members"]}
    assert data["primary"] == "postgres" and data["warnings"] == []
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
    checks = {r["name"]: r for r in pair.drkit("-o", "json", "check").json()["results"]}
    assert checks["postgres: pg_rewind"]["status"] == "warning"
    assert "--rebuild" in checks["postgres: pg_rewind"]["detail"]
    assert checks["replication:postgres"]["status"] == "ok"
    assert checks["postgres: wal_sender_timeout"]["status"] == "ok"  # 3s, within the 3s window
    # a switchover: no rewind needed after a clean stop, checksums or not
    switched = pair.drkit("-o", "json", "switchover", "--to", "pg2")
    assert switched.code == 0, switched.stdout + switched.stderr
    steps = {st["name"]: st for st in switched.json()["steps"]}
    assert "no rewind required" in steps["demote-old-primary"]["detail"], steps["demote-old-primary"]
    assert "pg_rewind cannot rewind postgres" in steps["prepare"]["detail"]
    # a failover back: pg2 stopped at once; rewinding it is not possible: rejoin says so
    pair.query("p2", "insert into w (n) values (1)")
    wait_rows(pair, "p1", 1)
    pair.net.link("p2", "down")
    back = pair.drkit("-o", "json", "failover", "--to", "postgres")
    assert back.code == 0, back.stdout + back.stderr
    pair.net.link("p2", "up")
    refused = pair.drkit("replica", "rejoin", "pg2")
    assert refused.code == 1 and "replica rejoin pg2 --rebuild" in refused.stderr, refused.stderr
    rebuilt = pair.drkit("replica", "rejoin", "pg2", "--rebuild")
    assert rebuilt.code == 0, rebuilt.stdout + rebuilt.stderr
    assert pair.query("p2", "select pg_is_in_recovery()") is True
    wait_rows(pair, "p2", 1)
    kept = list((pair.root / "p2").glob("data.drkit-before-rebuild-*"))
    assert len(kept) == 1 and (kept[0] / "PG_VERSION").exists()  # moved aside, never deleted
    checked = pair.drkit("-o", "json", "check").json()
    listed = [k for k in checked["moved_aside"] if k["service"] == "postgres"]
    assert [k["path"] for k in listed] == [str(kept[0])], listed  # and `check` lists it, with its removal
    assert (
        listed[0]["label"] == "before-rebuild" and listed[0]["bytes"] > 0 and "rm -rf" in listed[0]["remove"]
    )


def test_switchover_loses_nothing_and_a_failed_demotion_leaves_clients_on_the_new_primary(
    pair: Pair, tmp_path: Path
) -> None:
    """restore_from_archive: true (the default). The old primary cannot start again after the
    switch (its configuration broken while drkit holds before the demotion): the switchover
    fails, yet clients already use the new primary, nothing acknowledged is lost, and
    `replica rejoin` brings the old one back once it can start."""
    holds = tmp_path / "holds"
    holds.mkdir()
    conf = pair.data_dir("p1") / "postgresql.conf"
    good = conf.read_text()
    writer = Writer(pair.pooled)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) >= 50, timeout=60, what="the writer's first commits")
        env = {"DRKIT_TEST_HOLD": f"before-demote-old-primary:{holds}"}
        proc = pair.popen_drkit("-o", "json", "switchover", "--to", "pg2", env=env)
        wait_for((holds / "before-demote-old-primary.reached").exists, timeout=120, what="the demotion")
        conf.write_text(good + "\nthis line is not a setting\n")
        (holds / "before-demote-old-primary.release").touch()
        out, err = proc.communicate(timeout=180)
        acked_at_switch = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= acked_at_switch + 50, timeout=60, what="commits after")
    finally:
        writer.stop()
        conf.write_text(good)
    assert proc.returncode == 1, out + err
    journal = json.loads(out)
    steps = {st["name"]: st for st in journal["steps"]}
    assert [steps[n]["status"] for n in ("promote", "repoint", "resume-writers")] == ["succeeded"] * 3
    assert steps["demote-old-primary"]["status"] == "failed"
    assert "drkit replica rejoin postgres" in steps["demote-old-primary"]["detail"]
    measure = journal["measures"][0]
    assert measure["rpo_seconds"] == 0.0
    print(
        f"\nswitchover: writers paused {measure['rto_seconds']:.2f}s, "
        f"{len(writer.acked)} commits acknowledged"
    )
    # clients are on the new primary: pgbouncer's entry, and the writer's commits there
    assert f"host={HOSTS['p2']} port={PORTS['p2']}" in (pair.root / "pgbouncer.ini").read_text()
    assert writer.acked[-1].server == HOSTS["p2"]
    assert pair.query("p2", "select pg_is_in_recovery()") is False
    rows = pair.query("p2", "select count(*) from w")
    assert rows == len(writer.acked), (rows, len(writer.acked), writer.errors)
    assert not writer.missing_on(set(pair.rows("p2", "select n from w")), HOSTS["p1"])
    status = pair.drkit("-o", "json", "replica", "status").json()
    assert status["primary"] == "pg2"
    assert {m["name"]: m["role"] for m in status["members"]}["postgres"] == "down"
    # once it can start, rejoin makes it a standby (no rewind after its clean stop)
    rejoin = pair.drkit("replica", "rejoin", "postgres")
    assert rejoin.code == 0, rejoin.stdout + rejoin.stderr
    assert "no rewind required" in rejoin.stdout
    assert pair.query("p1", "select pg_is_in_recovery()") is True
    state = pair.query("p2", "select state from pg_stat_replication where application_name = 'postgres'")
    assert state == "streaming"
    wait_rows(pair, "p1", rows)


def rpo_covers_the_loss(journal: dict[str, Any], missing: list[Ack]) -> float:
    """The journal's RPO bounds what was really lost: every acknowledged commit missing on the
    new primary is counted among the commits it lost and falls within the RPO after the newest
    commit it kept. Server-side times only (each row's time inside its insert, before its
    commit): nothing here depends on how fast the writer was scheduled. The real loss, s."""
    measure = journal["measures"][0]
    steps = {st["name"]: st for st in journal["steps"]}
    found = steps["measure-loss"]["facts"]["loss"]
    rpo = measure["rpo_seconds"]
    assert rpo is not None and found["exact"] is True, found  # the old WAL is on this host
    assert found["seconds"] == rpo
    assert len(missing) <= found["lost_commits"], (missing, found)
    assert (rpo > 0) == (found["lost_commits"] > 0), found  # RPO 0 only when nothing was lost
    if not missing:
        return 0.0
    kept = datetime.fromisoformat(measure["recovered_to"])
    real = max((a.inserted_at - kept).total_seconds() for a in missing)
    assert real <= rpo, (real, rpo, found)
    return real


def test_failover_after_link_cut_writer_continues(pair: Pair) -> None:
    writer = Writer(pair.pooled)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) >= 50, timeout=60, what="the writer's first commits")
        cut = time.time()
        pair.net.link("p1", "down")
        since = datetime.fromtimestamp(cut, UTC).isoformat()
        result = pair.drkit("-o", "json", "failover", "--to", "pg2", "--since", since)
        assert result.code == 0, result.stdout + result.stderr
        wait_for(lambda: writer.first_ack_on(HOSTS["p2"]), timeout=60, what="a commit on the new primary")
        acked = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= acked + 20, timeout=60, what="more commits")
    finally:
        writer.stop()
    first = writer.first_ack_on(HOSTS["p2"])
    assert first is not None
    journal = result.json()
    measure = journal["measures"][0]
    steps = {st["name"]: st for st in journal["steps"]}
    assert journal["failure_at"] is not None and 0 < measure["rto_seconds"] < 60
    assert pair.query("p2", "select pg_is_in_recovery()") is False
    present = pair.query("p2", "select count(*) from w")
    missing = writer.missing_on(set(pair.rows("p2", "select n from w")), HOSTS["p1"])
    real = rpo_covers_the_loss(journal, missing)
    print(f"\nfailover steps: {', '.join(f'{n} {_secs(st)}' for n, st in steps.items())}")
    print(
        f"failover: writer committing on the new primary {first - cut:.1f}s after the link cut; "
        f"journal RTO {measure['rto_seconds']:.1f}s; {measure['detail']}; "
        f"{len(missing)} acknowledged commit(s) missing, real loss {real:.3f}s"
    )
    # pg2's WAL receiver was looked at while the failover confirmed the loss
    assert steps["check-candidate"]["facts"]["transfer_latency"] is not None, steps["check-candidate"]
    # no standby could reach the old primary: stopped at once, and that lasts
    assert "no standby reaches it" in steps["fence"]["detail"], steps["fence"]
    assert steps["fence"]["facts"]["fence_verified"] is True
    pair.net.link("p1", "up")
    with pytest.raises(psycopg.OperationalError):
        pair.query("p1", "select 1")
    # started again (a reboot, an operator), it comes back read-only: standby.signal
    assert (pair.data_dir("p1") / "standby.signal").exists()
    pair.runtime("p1").start()
    assert pair.query("p1", "select pg_is_in_recovery()") is True
    # without it, two primaries: replica status says so, exit 3
    pair.runtime("p1").stop()
    (pair.data_dir("p1") / "standby.signal").unlink()
    pair.runtime("p1").start()
    split = pair.drkit("-o", "json", "replica", "status")
    assert split.code == 3 and "split brain" in split.json()["warnings"][0], split.stdout + split.stderr
    # the other repoints: the env file and the hook name the new primary
    assert "POSTGRES_HOST=10.200.0.2\n" in (pair.root / "app.env").read_text()
    assert (pair.root / "hook.out").read_text() == "pg2 10.200.0.2"
    # and it rejoins as a standby (--force: it runs as a primary; pg_rewind, then streaming)
    rejoin = pair.drkit("replica", "rejoin", "postgres", "--force")
    assert rejoin.code == 0, rejoin.stdout + rejoin.stderr
    assert pair.query("p1", "select pg_is_in_recovery()") is True
    wait_rows(pair, "p1", present)


@pytest.mark.parametrize("pair", [{"rpo": "2s"}], indirect=True)
def test_throttled_standby_refused_then_forced_and_the_rpo_covers_the_loss(pair: Pair) -> None:
    """Replication throttled before the cut: the standby replays all it receives (received ==
    replayed), yet it is seconds behind the primary. Refused beyond max_lag (the RPO, 2 s)
    without --force; forced, the journal's RPO covers every acknowledged commit lost."""
    writer = Writer(pair.pooled)
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) >= 50, timeout=60, what="the writer's first commits")
        pair.net.throttle("p2", "96kbit")

        def standby_behind() -> float:
            newest = writer.acked[-1].inserted_at
            replayed = pair.query("p2", "select max(at) from w")
            return (newest - replayed).total_seconds() if replayed else 0.0

        wait_for(lambda: standby_behind() > 5, timeout=120, what="the standby 5 s behind")
        pair.net.link("p1", "down")
    finally:
        writer.stop()
        pair.net.unthrottle("p2")
    refused = pair.drkit("-o", "json", "failover", "--to", "pg2")
    assert refused.code == 1, refused.stdout + refused.stderr
    check = {st["name"]: st for st in refused.json()["steps"]}["check-candidate"]
    assert "beyond the 2s lag limit" in check["detail"], check
    # the evidence without the old primary's data directory on this host: what pg2's WAL
    # receiver last got had left the primary seconds before (the rest was still on the way)
    assert check["facts"]["transfer_latency"] > 2, check["facts"]
    assert pair.query("p2", "select pg_is_in_recovery()") is True  # nothing was promoted
    assert pair.runtime("p1").is_running()  # nor fenced
    forced = pair.drkit("-o", "json", "failover", "--to", "pg2", "--force")
    assert forced.code in (0, 4), forced.stdout + forced.stderr
    journal = forced.json()
    assert pair.query("p2", "select pg_is_in_recovery()") is False
    steps = {st["name"]: st for st in journal["steps"]}
    assert "forced" in steps["check-candidate"]["detail"]
    assert steps["check-candidate"]["facts"]["lag_seconds"] > 2
    missing = writer.missing_on(set(pair.rows("p2", "select n from w")), HOSTS["p1"])
    assert missing, "the throttled standby lost nothing: the test did not make it lag"
    real = rpo_covers_the_loss(journal, missing)
    print(
        f"\nthrottled standby: refused ({check['detail']}); forced: {len(missing)} acknowledged "
        f"commit(s) lost, real loss {real:.2f}s, {journal['measures'][0]['detail']}"
    )


def test_one_probe_blip_does_not_trigger_failover(pair: Pair, tmp_path: Path) -> None:
    """The link comes back between the first failed probe and the second (drkit holds there
    until the test has restored it): no failover."""
    holds = tmp_path / "holds"
    holds.mkdir()
    pair.net.link("p1", "down")
    env = {"DRKIT_TEST_HOLD": f"confirm-down-probe-1:{holds}"}
    proc = pair.popen_drkit("failover", "--to", "pg2", env=env)
    try:
        wait_for((holds / "confirm-down-probe-1.reached").exists, timeout=60, what="the first failed probe")
    finally:
        pair.net.link("p1", "up")
    wait_for(lambda: pair.net.answers("c", HOSTS["p1"], PORTS["p1"]), timeout=30, what="p1 reachable again")
    (holds / "confirm-down-probe-1.release").touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "probe 1/3: primary down" in out and "answered probe 2/3" in out + err
    assert pair.query("p1", "select pg_is_in_recovery()") is False
    assert pair.query("p2", "select pg_is_in_recovery()") is True
    assert not (Path(pair.root) / "state" / "replication" / "postgres.json").exists()
