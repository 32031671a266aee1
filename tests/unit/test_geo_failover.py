"""geo-failover: the failover's automatic steps run (a fake failover here), the manual ones
wait for an operator and are timed; --yes records them as assumed, never as done; the
report measures RTO (to writes, and to users when DNS/CDN were confirmed) and RPO."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.journal import RunKind, StepStatus, Verdict
from drkit.domain.stack import Member, Replication, RuntimeSpec
from drkit.engines.core.workspace import Workspace
from drkit.engines.runbooks import recover
from drkit.engines.runbooks.model import AssumeYes, Runbook, Step, StepContext, StepResult
from drkit.engines.runbooks.run import execute, new_journal
from drkit.engines.runbooks.scenarios import geo_failover
from tests.unit.test_runbook_engine import workspace

LOST = 1_000.0  # the primary region's loss, seconds of the fake clock
MANUAL = ["update-dns", "update-cdn", "notify-users", "monitor-errors", "update-status-page"]


class FakeClock:
    def __init__(self) -> None:
        self.t = LOST

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def at(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class FakeFailover:
    """Stands in for engines/failover: its step names and facts, a clock that moves."""

    def __init__(self, clock: FakeClock, *, lost_commits: int = 12) -> None:
        self.clock = clock
        self.runs: list[str] = []
        self.lost_commits = lost_commits

    def __call__(self, parameters: dict[str, Any]) -> Runbook:
        def step(name: str, spent: float, facts: dict[str, Any]) -> Step:
            def run(_ctx: StepContext) -> StepResult:
                self.runs.append(name)
                self.clock.t += spent
                return StepResult(name, facts)

            return Step(name, name, run, service="pg2")

        steps = (
            step("confirm-down", 4, {"lost_at": at(LOST)}),
            step("check-candidate", 1, {"lag_seconds": 2.0, "last_replay_epoch": LOST - 3}),
            step("fence", 1, {"fenced_at": at(LOST + 6), "fence_verified": True}),
            step("promote", 2, {"switchpoint": 100, "writable_at": at(LOST + 8)}),
            step("repoint", 1, {}),
            step("verify", 1, {"healthy_at": at(LOST + 9)}),
            step("measure-loss", 0, {"loss": self.loss()}),
        )
        return Runbook("failover", steps, {"to": "pg2"}, {"from": "postgres", "to": "pg2"})

    def loss(self) -> dict[str, Any]:
        """The failover's measured loss, as engines/failover/loss.py records it."""
        if not self.lost_commits:
            return {"seconds": 0.0, "kept_until": at(LOST - 3), "lost_commits": 0, "source": "WAL"}
        source = "the old primary's WAL, read on this host (pg_waldump)"
        return {
            "seconds": 3.0,
            "kept_until": at(LOST - 3),
            "lost_commits": self.lost_commits,
            "source": source,
        }


def replicated(tmp_path: Path, clock: FakeClock) -> Workspace:
    ws = workspace(tmp_path)
    spec = RuntimeSpec(type="local")
    repl = Replication(
        members=(Member("postgres", "host=a", spec, "postgres"), Member("pg2", "host=b", spec, "pg2"))
    )
    pg = replace(ws.stack.services["postgres"], replication=repl, rto=timedelta(minutes=30))
    stack = replace(ws.stack, services={"postgres": pg})
    return replace(ws, stack=stack, clock=clock)


class Operator:
    """Answers each question after `minutes`; records what it was asked."""

    def __init__(self, clock: FakeClock, minutes: float = 2, refuse: str | None = None) -> None:
        self.clock, self.minutes, self.refuse = clock, minutes, refuse
        self.asked: list[str] = []

    def __call__(self, question: str) -> bool:
        self.asked.append(question)
        self.clock.t += self.minutes * 60
        return not (self.refuse and question.startswith(self.refuse))


def run(ws: Workspace, confirm: Any) -> Any:
    runbook = recover.prepare(ws, recover.RecoverArgs("geo-failover", ("drkit",)))
    journal = new_journal(ws, runbook, RunKind.RECOVERY)
    done = execute(ws, runbook, journal, say=lambda _m: None, confirm=confirm)
    return runbook, recover.finish(ws, done)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_operator_confirms_manual_steps_timed_and_users_rto_measured(
    tmp_path: Path, clock: FakeClock
) -> None:
    ws = replicated(tmp_path, clock)
    fake = FakeFailover(clock)
    geo_failover.provide(fake)
    operator = Operator(clock, minutes=2)
    runbook, journal = run(ws, operator)
    assert [s.name for s in runbook.steps][-5:] == MANUAL
    assert all(s.title.startswith("MANUAL:") for s in runbook.steps[-5:])
    assert journal.verdict is Verdict.PASSED, journal.error
    assert fake.runs == [
        "confirm-down",
        "check-candidate",
        "fence",
        "promote",
        "repoint",
        "verify",
        "measure-loss",
    ]
    assert len(operator.asked) == 5
    notify = next(q for q in operator.asked if q.startswith("tell users"))
    assert at(LOST - 3) in notify and "12 transactions" in notify  # the loss the failover measured
    dns = journal.step("update-dns")
    assert dns.status is StepStatus.SUCCEEDED and "confirmed by the operator at" in dns.detail
    assert dns.facts["manual:update-dns"]["by"] == "operator"
    assert dns.started_at and dns.finished_at and (dns.finished_at - dns.started_at).total_seconds() == 120
    (m,) = journal.measures
    assert m.service == "postgres"
    assert m.rto_seconds == 10 + 2 * 120  # the failover took 10 s; DNS, then CDN, confirmed 2 min apart
    assert m.rpo_seconds == 3.0  # the failover's measured bound
    assert m.recovered_to == datetime.fromtimestamp(LOST - 3, UTC)  # the newest commit kept
    assert "database writable after 9.0s" in m.detail and m.rto_met is True


def test_yes_records_manual_steps_as_assumed_not_done(tmp_path: Path, clock: FakeClock) -> None:
    ws = replicated(tmp_path, clock)
    geo_failover.provide(FakeFailover(clock, lost_commits=0))
    _runbook, journal = run(ws, AssumeYes())
    for name in MANUAL:
        record = journal.step(name)
        assert record.status is StepStatus.SUCCEEDED
        assert record.detail.startswith("NOT CONFIRMED BY AN OPERATOR: assumed by --yes at")
        assert "still to do:" in record.detail
        assert record.facts[f"manual:{name}"]["by"] == "--yes"
    (m,) = journal.measures
    assert m.rto_seconds == 9.0 and m.rpo_seconds == 0.0  # the new primary had every commit
    assert "the users' RTO is not measured" in m.detail


def test_refused_confirmation_stops_and_resume_asks_again(tmp_path: Path, clock: FakeClock) -> None:
    ws = replicated(tmp_path, clock)
    fake = FakeFailover(clock)
    geo_failover.provide(fake)
    _runbook, journal = run(ws, Operator(clock, refuse="update the CDN"))
    assert journal.verdict is Verdict.FAILED
    assert journal.step("update-dns").status is StepStatus.SUCCEEDED
    assert journal.step("update-cdn").status is StepStatus.FAILED
    assert "not confirmed by an operator" in journal.step("update-cdn").detail
    assert journal.step("notify-users").status is StepStatus.PENDING
    runs_before = list(fake.runs)
    again = execute(ws, recover.rebuild(journal), journal, say=lambda _m: None, confirm=Operator(clock))
    final = recover.finish(ws, again)
    assert final.verdict is Verdict.PASSED
    assert fake.runs == runs_before  # the failover's steps are not run twice
    assert all(final.step(n).status is StepStatus.SUCCEEDED for n in MANUAL)


def test_needs_one_replicated_service_and_the_failover_steps(tmp_path: Path, clock: FakeClock) -> None:
    plain = replace(workspace(tmp_path / "a"), clock=clock)
    with pytest.raises(UsageError, match="exactly one replicated PostgreSQL service"):
        geo_failover.plan(plain)
    assert recover.SCENARIOS["geo-failover"] is geo_failover
    geo_failover._automatic.clear()
    with pytest.raises(OperationError, match="automatic steps are not available"):
        geo_failover.build({"service": "postgres"})


def test_loss_window_sentences() -> None:
    assert geo_failover.loss_window({"loss": {"seconds": 0.0}}).startswith("nothing")
    assert "unknown" in geo_failover.loss_window({})
    unbounded = {"lost_at": at(LOST), "loss": {"seconds": None, "source": "not fenced"}}
    assert "not bounded" in geo_failover.loss_window(unbounded)
    # a bound covers what was lost: never "nothing" while commits are missing
    lost = {"loss": {"seconds": 0.2, "kept_until": at(LOST - 1), "lost_commits": 3, "source": "WAL"}}
    assert geo_failover.loss_window(lost).startswith("3 transactions committed after")
