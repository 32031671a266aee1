"""Failover's decisions without servers: the replication config, the probes over a window
(a blip does not trigger), pgbouncer's ini rewrite, the fence refused without --force.
(The lag and the RPO bound: test_failover_loss.py.)"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.config.loader import load_stack
from drkit.domain.errors import ConfigError, OperationError
from drkit.engines.failover.cluster import Cluster, format_lsn, parse_lsn, sync_names
from drkit.engines.failover.confirm import confirm_down
from drkit.engines.failover.repoint import rewrite_pgbouncer_ini
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepResult

STACK = """\
version: 1
stack: demo
repositories: {local: {type: fs, path: ./repo}}
services:
  postgres:
    kind: postgres
    dsn: host=10.0.0.1 port=5432 dbname=app
    rpo: 5s
    runtime: {type: local, data_dir: /srv/pg1, exec_prefix: [ip, netns, exec, db1]}
    replication:
      synchronous: true
      standbys:
        pg2:
          dsn: host=10.0.0.2 dbname=app
          runtime: {type: local, data_dir: /srv/pg2}
          synchronous: true
        Pg-3:
          dsn: host=10.0.0.3 dbname=app
          runtime: {type: local, data_dir: /srv/pg3}
      failover:
        probes: 4
        window: 8s
        repoint:
          - {type: pgbouncer, path: /etc/pgbouncer/pgbouncer.ini, admin_dsn: "host=/run/pgb dbname=pgbouncer"}
          - {type: hook, command: [/usr/local/bin/repoint]}
"""


def load(tmp_path: Path, text: str = STACK) -> Cluster:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    stack = load_stack(path)
    svc = stack.service("postgres")
    assert svc.replication is not None
    return Cluster(svc, svc.replication, tmp_path)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_replication_config_members_slots_and_policy(tmp_path: Path) -> None:
    cluster = load(tmp_path)
    names = [m.name for m in cluster.replication.members]
    assert names == ["postgres", "pg2", "Pg-3"]
    assert cluster.member("Pg-3").slot == "pg_3"
    assert cluster.member("postgres").runtime.exec_prefix == ("ip", "netns", "exec", "db1")
    policy = cluster.replication.failover
    assert (policy.probes, policy.window, policy.max_lag) == (4, 8.0, None)
    assert [r.type for r in policy.repoint] == ["pgbouncer", "hook"]
    assert cluster.host_port(cluster.member("pg2")) == ("10.0.0.2", 5432)
    assert sync_names(cluster, "postgres") == "FIRST 1 (pg2)"
    assert sync_names(cluster, "pg2") == "FIRST 1 (postgres)"
    assert sync_names(cluster, "pg2", up=set()) == ""


def test_replication_config_errors_name_the_key(tmp_path: Path) -> None:
    bad_repoint = STACK.replace(
        "{type: hook, command: [/usr/local/bin/repoint]}", "{type: env_file, path: .env}"
    )
    with pytest.raises(ConfigError, match=r"failover.repoint.1.*needs key"):
        load(tmp_path, bad_repoint)
    not_pg = STACK.replace("kind: postgres", "kind: redis")
    with pytest.raises(ConfigError, match="replication is only for services of kind postgres"):
        load(tmp_path, not_pg)
    one_probe = STACK.replace("probes: 4", "probes: 1")
    with pytest.raises(ConfigError, match="probes"):
        load(tmp_path, one_probe)


def test_every_probe_must_fail_over_the_window() -> None:
    clock = FakeClock()
    said: list[str] = []
    answers = iter([False, False, False, False])
    first = confirm_down(lambda: next(answers), probes=4, window=9.0, clock=clock, say=said.append)
    assert first == datetime.fromtimestamp(0, UTC)
    assert clock.t == pytest.approx(9.0)  # spread over the window
    assert len(said) == 4


def test_a_one_probe_blip_does_not_trigger() -> None:
    clock = FakeClock()
    answers = iter([False, True, False])
    with pytest.raises(OperationError, match="answered probe 2/3"):
        confirm_down(lambda: next(answers), probes=3, window=6.0, clock=clock, say=lambda _m: None)


def test_lsn_round_trip() -> None:
    assert parse_lsn("1/A0") == (1 << 32) + 0xA0
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    assert parse_lsn(None) is None


def test_pgbouncer_ini_rewrite_touches_only_the_named_entries() -> None:
    ini = (
        "[databases]\n"
        "nchat = host=10.0.0.1 port=5432 dbname=nchat\n"
        "other = host=10.9.9.9 dbname=other\n"
        "; nchat = host=commented\n"
        "[pgbouncer]\n"
        "listen_port = 6432\n"
    )
    text, changed = rewrite_pgbouncer_ini(ini, ["nchat"], "10.0.0.2", 5433)
    assert changed == 1
    assert "nchat = host=10.0.0.2 port=5433 dbname=nchat\n" in text
    assert "other = host=10.9.9.9 dbname=other\n" in text
    assert "; nchat = host=commented" in text and "listen_port = 6432" in text
    everything, n = rewrite_pgbouncer_ini(ini, [], "h", 1)
    assert n == 2 and "other = host=h dbname=other port=1\n" in everything


# every member on a closed local port: nothing leaves this machine
OFFLINE = (
    STACK.replace("host=10.0.0.1 port=5432", "host=127.0.0.1 port=1")
    .replace("host=10.0.0.2", "host=127.0.0.1 port=1")
    .replace("host=10.0.0.3", "host=127.0.0.1 port=1")
)


def _fence_step(tmp_path: Path, *, force: bool) -> StepResult:
    from drkit.engines.failover.failover import build
    from tests.unit.test_runbook_engine import workspace

    cluster = load(tmp_path, OFFLINE)
    runbook = build(cluster, "pg2", force=force)
    step = next(s for s in runbook.steps if s.name == "fence")
    ws = replace(workspace(tmp_path / "ws"), clock=FakeClock())
    facts = {"lost_at": datetime.fromtimestamp(0, UTC).isoformat()}
    return step.run(StepContext(ws=ws, parameters={}, facts=facts, say=lambda _m: None))


def test_no_fence_no_failover_without_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from drkit.engines.failover import failover

    def unreachable(*_args: object, **_kw: object) -> None:
        raise OperationError("its host does not answer")

    monkeypatch.setattr(failover, "fence_member", unreachable)
    with pytest.raises(OperationError, match="can be neither reached nor fenced.*without --force"):
        _fence_step(tmp_path, force=False)
    assert "forced" in _fence_step(tmp_path, force=True).detail


def test_an_unverified_fence_refuses_without_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime said it stopped it, yet its process is still there (or its port answers):
    promoting would make two primaries."""
    from drkit.engines.failover import failover
    from drkit.engines.failover.fence import FenceOutcome

    calls: list[bool] = []

    def still_there(*_args: object, immediate: bool, **_kw: object) -> FenceOutcome:
        calls.append(immediate)
        return FenceOutcome(
            "stopped", False, "127.0.0.1:1 still accepts connections", datetime.now(UTC), None
        )

    monkeypatch.setattr(failover, "fence_member", still_there)
    with pytest.raises(OperationError, match="not verified .*still accepts connections.*without --force"):
        _fence_step(tmp_path, force=False)
    forced = _fence_step(tmp_path, force=True)
    assert "NOT verified" in forced.detail and forced.facts["fence_verified"] is False
    assert calls == [True, True]  # no standby reaches the old primary: stopped at once


class FakeRuntime:
    def __init__(self, events: list[str], name: str) -> None:
        self.events, self.name = events, name

    def start(self) -> None:
        self.events.append(f"start {self.name}")


def _failed_switchover(tmp_path: Path, failed: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    """run.run on a switchover whose step `failed` fails (the steps before it succeed)."""
    from drkit.engines.failover import run, settle
    from drkit.engines.failover.cluster import Probe
    from tests.unit.test_runbook_engine import workspace

    cluster = load(tmp_path, OFFLINE)
    events: list[str] = []
    names = [
        "prepare",
        "pause-writers",
        "catch-up",
        "stop-old-primary",
        "promote",
        "repoint",
        "resume-writers",
    ]

    def step(name: str) -> Step:
        def act(_ctx: StepContext) -> StepResult:
            if name == failed:
                raise OperationError(f"{name} broke")
            events.append(name)
            return StepResult(name, {"restore_command": "drkit wal-fetch %f %p"} if name == "prepare" else {})

        return Step(name, name, act)

    runbook = Runbook("switchover", tuple(step(n) for n in names), {"from": "postgres", "to": "pg2"})
    promoted = names.index(failed) > names.index("promote")
    monkeypatch.setattr(settle, "probe", lambda _c, m, *a: Probe(m.name, True, in_recovery=not promoted))
    monkeypatch.setattr(Cluster, "runtime", lambda _self, m: FakeRuntime(events, m.name))
    monkeypatch.setattr(
        settle,
        "_repoint",
        lambda _ws, _c, new: events.append(f"repoint {new.name}") or f"clients repointed to {new.name}",
    )
    monkeypatch.setattr(
        settle.actions, "resume_restoring", lambda _c, m, cmd: events.append(f"restore {cmd}")
    )
    monkeypatch.setattr(settle, "resume_writers", lambda *_a: events.append("resume") or "resumed")
    journal = run.run(replace(workspace(tmp_path / "ws"), clock=FakeClock()), cluster, runbook, say=print)
    return events, str(journal.error)


def test_a_switchover_failed_before_the_promotion_starts_the_old_primary_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, error = _failed_switchover(tmp_path, "promote", monkeypatch)
    assert events[-3:] == ["start postgres", "restore drkit wal-fetch %f %p", "resume"]
    assert "postgres started again" in error


def test_a_switchover_failed_after_the_promotion_leaves_clients_on_the_new_primary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, error = _failed_switchover(tmp_path, "repoint", monkeypatch)
    assert "clients repointed to pg2" in error
    assert events[-2:] == ["repoint pg2", "resume"]
    assert "start postgres" not in events


def test_one_primary_or_a_split_brain() -> None:
    from drkit.engines.failover.checks import primaries_check

    assert primaries_check("r", ["postgres"], []).status.value == "ok"
    split = primaries_check("r", ["pg2", "postgres"], [])
    assert split.status.value == "failed" and "split brain: pg2, postgres" in split.detail
    assert primaries_check("r", [], ["postgres"]).status.value == "failed"


def test_replica_status_warns_of_two_primaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from drkit.engines.failover import status
    from drkit.engines.failover.cluster import Probe

    cluster = load(tmp_path, OFFLINE)
    primary = {"postgres", "pg2"}
    monkeypatch.setattr(status, "probe", lambda _c, m, *a: Probe(m.name, True, m.name not in primary, 1))
    monkeypatch.setattr(status, "rows", lambda *_a: [])
    _primary, members, warnings = status.replica_status(cluster)
    assert [m.role for m in members] == ["primary", "primary", "standby"]
    assert warnings and "split brain" in warnings[0]


def test_check_advises_rewind_prerequisites_and_the_walsender_timeout() -> None:
    from drkit.engines.postgres.check import check_rewind, check_sender_timeout

    assert check_rewind("pg2", True, False).status.value == "ok"
    assert check_rewind("pg2", False, True).status.value == "ok"
    none = check_rewind("pg2", False, False)
    assert none.status.value == "warning" and "replica rejoin pg2 --rebuild" in none.detail
    assert check_sender_timeout("pg2", 5, 6).status.value == "ok"
    slow = check_sender_timeout("pg2", 60, 6)  # PostgreSQL's default against a 6 s window
    assert slow.status.value == "warning" and "wal_sender_timeout = '6s'" in slow.detail
    assert check_sender_timeout("pg2", 0, 6).status.value == "warning"  # off: never notices
