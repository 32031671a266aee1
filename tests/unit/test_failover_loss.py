"""What a failover loses, from evidence (engines/failover/loss.py, adapters/postgres/wal_tail.py):
the candidate's lag behind the old primary's last known position, and the RPO bound after
the promotion. pg_waldump's output here is copied from PostgreSQL 15's pg_waldump."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drkit.adapters.postgres.wal_tail import Commit, WalTail, end_of_wal, parse_commits
from drkit.domain.errors import ToolError
from drkit.domain.journal import Journal, RunKind, StepRecord, StepStatus
from drkit.domain.wal import Lsn
from drkit.engines.failover import failover, loss, run
from drkit.engines.failover.loss import Candidate, Position
from tests.unit.test_failover_logic import load
from tests.unit.test_runbook_engine import workspace

WALDUMP = """\
rmgr: Transaction len (rec/tot):    405/   405, tx:        724, lsn: 0/01516598, prev 0/01516550, \
desc: COMMIT 2026-12-06 11:51:31.029975 UTC; inval msgs: catcache 80 catcache 79 snapshot 2608
rmgr: Transaction len (rec/tot):     34/    34, tx:        725, lsn: 0/01516770, prev 0/01516730, \
desc: COMMIT 2026-12-06 11:51:31.033436 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        726, lsn: 0/015167D8, prev 0/01516798, \
desc: ABORT 2026-12-06 11:51:31.035666 UTC
rmgr: Transaction len (rec/tot):     34/    34, tx:        727, lsn: 0/01516840, prev 0/01516800, \
desc: COMMIT 2026-12-06 11:51:31.117980 UTC
"""
END = (
    "pg_waldump: error: error in WAL record at 0/1516840: invalid record length at 0/1516868: "
    "wanted 24, got 0\n"
)
T0 = datetime(2026, 12, 6, 11, 51, 31, tzinfo=UTC)


def lsn(text: str) -> int:
    return Lsn.parse(text).value


def ms(n: float) -> datetime:
    return T0 + timedelta(milliseconds=n)


def test_commits_and_the_end_of_wal_from_pg_waldump() -> None:
    commits = parse_commits(WALDUMP)
    assert [c.lsn for c in commits] == [lsn("0/01516598"), lsn("0/01516770"), lsn("0/01516840")]
    assert commits[1].end == lsn("0/01516770") + 34  # aborts are not commits
    assert commits[2].at == datetime(2026, 12, 6, 11, 51, 31, 117980, tzinfo=UTC)
    assert end_of_wal(END, lsn("0/1516598")) == lsn("0/1516868")
    nothing = "pg_waldump: error: could not find a valid record after 0/1516868\n"
    assert end_of_wal(nothing, lsn("0/1516868")) == lsn("0/1516868")
    next_file = (
        'pg_waldump: error: could not find file "000000010000000000000002": No such file or directory\n'
    )
    assert end_of_wal(next_file, lsn("0/1516868")) == lsn("0/2000000")
    # the WAL where reading starts is gone: that is not "nothing after it"
    gone = 'pg_waldump: error: could not find file "000000010000000000000005": No such file or directory\n'
    with pytest.raises(ToolError, match="not there"):
        end_of_wal(gone, lsn("0/5000000"))
    with pytest.raises(ToolError, match="Permission denied"):
        end_of_wal('pg_waldump: error: could not open directory "x": Permission denied\n', 0)


def tail(start: int, end: int, *commits: tuple[int, float]) -> WalTail:
    return WalTail(start, end, tuple(Commit(at_, at_ + 34, ms(t)) for at_, t in commits))


def test_lag_read_from_the_old_primarys_wal_is_exact() -> None:
    caught_up = Candidate(received=1000, replayed=1000, last_commit=ms(0), receiving=True)
    assert loss.lag(caught_up, [], tail(1000, 1100)).seconds == 0.0  # shutdown records only
    behind = loss.lag(caught_up, [], tail(1000, 9000, (1000, 300), (5000, 8400)))
    assert (behind.bytes, behind.commits, behind.seconds) == (8000, 2, 8.4)
    # a commit record cut by what was received is lost, not kept
    cut = Candidate(received=1010, replayed=900, last_commit=ms(0), receiving=False)
    assert loss.lag(cut, [], tail(900, 2000, (1000, 500))).commits == 1
    # one received but not replayed yet is kept (promotion replays it)
    ahead = Candidate(received=2000, replayed=900, last_commit=ms(0), receiving=False)
    assert loss.lag(ahead, [], tail(900, 2000, (1000, 500))).seconds == 0.0


def test_lag_behind_the_primarys_last_reported_position() -> None:
    throttled = Candidate(received=1000, replayed=1000, last_commit=ms(0), receiving=True)
    reported = Position(90_000, ms(8400), "the primary's WAL end as pg2's WAL receiver last heard it")
    found = loss.lag(throttled, [reported], None)
    assert found.bytes == 89_000 and found.seconds == pytest.approx(8.4)
    assert loss.refuse_reason(found, 5.0) is not None  # received == replayed is not "0 s behind"
    assert loss.refuse_reason(found, None) is None  # no limit configured
    had_all = loss.lag(throttled, [Position(1000, ms(9000), "probe")], None)
    assert had_all.seconds == 0.0 and loss.refuse_reason(had_all, 5.0) is None
    # a peer standby got further: the candidate lacks what the peer has
    peer = Position(5000, ms(2500), "what pg3 received")
    assert loss.lag(throttled, [peer], None).seconds == pytest.approx(2.5)


def test_lag_of_a_receiver_fed_late() -> None:
    """Throttled: the receiver has all the primary said in the last message it got, but that
    message left the primary seconds before it arrived (the rest is still on the way)."""
    late = Candidate(received=1000, replayed=1000, last_commit=ms(0), receiving=True, latency=3.4)
    reported = Position(1000, ms(0), "the primary's WAL end as pg2's WAL receiver last heard it")
    found = loss.lag(late, [reported], None)
    assert found.seconds == pytest.approx(3.4) and "left the primary" in found.source
    assert loss.refuse_reason(found, 2.0) is not None
    # it stopped receiving after that: what came after its last message is unknown
    stopped = Candidate(received=1000, replayed=1000, last_commit=ms(0), receiving=False)
    assert loss.lag(stopped, [reported], None).seconds is None


def test_a_standby_that_stopped_receiving_is_not_zero_seconds_behind() -> None:
    archive_fed = Candidate(received=1000, replayed=1000, last_commit=ms(0), receiving=False)
    found = loss.lag(archive_fed, [], None)
    assert found.seconds is None and "not streaming" in found.source
    assert "unknown" in str(loss.refuse_reason(found, 5.0))


def test_rpo_from_the_old_primarys_wal_after_the_fork() -> None:
    kept = ms(1000)
    nothing = loss.bound(5000, kept, tail=tail(5000, 5176), shutdown_redo=None, fenced_at=None)
    assert (nothing.seconds, nothing.exact, nothing.lost_commits, nothing.missing_bytes) == (
        0.0,
        True,
        0,
        176,
    )
    lost = loss.bound(
        5000, kept, tail=tail(5000, 9000, (5000, 1100), (6000, 1300)), shutdown_redo=None, fenced_at=None
    )
    assert lost.lost_commits == 2 and lost.seconds == pytest.approx(0.3) and lost.exact
    assert lost.newest_lost == ms(1300) and lost.kept_until == kept


def test_a_lost_commit_never_reads_as_rpo_zero() -> None:
    """The issue's case: the writer's commits went on after the declared loss (--since), the
    new primary kept one of them and lost the next: the old "from the last replayed
    transaction to the loss" clipped that to 0. The bound covers the lost commit."""
    since = ms(0)
    kept = ms(20)  # acknowledged after `since`, replicated
    found = loss.bound(5000, kept, tail=tail(5000, 5300, (5000, 20)), shutdown_redo=None, fenced_at=since)
    assert found.lost_commits == 1 and found.seconds is not None and found.seconds > 0


def test_rpo_without_the_old_primarys_wal() -> None:
    kept = ms(1000)
    clean = loss.bound(5000, kept, tail=None, shutdown_redo=5000, fenced_at=ms(6000))
    assert clean.seconds == 0.0 and clean.exact
    fenced = loss.bound(5000, kept, tail=None, shutdown_redo=5176, fenced_at=ms(6000))
    assert fenced.seconds == pytest.approx(5.0) and not fenced.exact and fenced.missing_bytes == 176
    assert "at most" in fenced.sentence()
    unfenced = loss.bound(5000, kept, tail=None, shutdown_redo=None, fenced_at=None)
    assert unfenced.seconds is None and "not fenced" in unfenced.sentence()


def _journal_of(steps: dict[str, dict[str, Any]], lost: datetime) -> Journal:
    records = tuple(
        StepRecord(name, name, status=StepStatus.SUCCEEDED, started_at=lost, finished_at=lost, facts=facts)
        for name, facts in steps.items()
    )
    return Journal("r", RunKind.FAILOVER, "failover", "demo", lost, {"from": "postgres"}, records)


def test_the_journals_rpo_covers_commits_acknowledged_after_the_declared_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's failure, as the steps record it: the writer went on committing after the
    moment given as the loss (--since); the standby replayed one of those commits (its newest
    commit is after the loss) and lacks the next one. The old measure (from the newest
    replayed commit to the loss, clipped at 0) said RPO 0.0; the bound covers the lost commit."""
    cluster = load(tmp_path)
    lost = ms(0)
    steps: dict[str, dict[str, Any]] = {
        "confirm-down": {"lost_at": lost.isoformat()},
        "check-candidate": {"last_replay_epoch": ms(20).timestamp()},
        "fence": {"fenced_at": ms(4000).isoformat(), "fence_verified": True, "final_lsn": 5300},
        "promote": {
            "promoted_lsn": 5000,
            "switchpoint": 5000,
            "kept_until": ms(20).isoformat(),
            "writable_at": ms(5000).isoformat(),
        },
        "verify": {"healthy_at": ms(5100).isoformat()},
    }
    monkeypatch.setattr(failover, "old_wal", lambda _m, start: (tail(start, 5300, (5000, 25)), ""))
    facts = {k: v for step in steps.values() for k, v in step.items()}
    steps["measure-loss"] = {"loss": failover.measure_loss(cluster.member("postgres"), facts).to_dict()}
    ws = workspace(tmp_path / "ws")
    (measure,) = run.finish(ws, cluster, _journal_of(steps, lost)).measures
    assert measure.rpo_seconds is not None and measure.rpo_seconds >= 0.005  # the lost commit, 5 ms later
    assert measure.recovered_to == ms(20)
    assert "1 commit(s) lost" in measure.detail and "pg_waldump" in measure.detail
    # the measure-loss step failed: still a bound, from the fence, never 0
    del steps["measure-loss"]
    (fallback,) = run.finish(ws, cluster, _journal_of(steps, lost)).measures
    assert fallback.rpo_seconds == pytest.approx(3.98) and "at most" in fallback.detail
