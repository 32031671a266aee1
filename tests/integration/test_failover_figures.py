"""The failover figures, measured on demand (`make failover-figures`, never in `make test`):
one replicated pair in network namespaces, a writer committing through pgbouncer, then N
failovers after a real link cut, back and forth (RTO: the cut to the writer's first commit
on the new primary; the journal's RPO against the acknowledged commits really missing), and
N switchovers (the writers' pause, with restore_from_archive: true). Prints the median and
the worst. Set DRKIT_FIGURES=N (runs of each)."""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime

import pytest

from drkit.infra.wait import wait_for
from tests.integration.netns_helpers import HOSTS, Pair, Writer
from tests.integration.test_failover import net, pair, rpo_covers_the_loss  # noqa: F401 (fixtures)

RUNS = int(os.environ.get("DRKIT_FIGURES", "0") or 0)
pytestmark = pytest.mark.skipif(
    RUNS <= 0, reason="figures on demand: DRKIT_FIGURES=N (make failover-figures)"
)
MEMBER = {"p1": "postgres", "p2": "pg2"}


def _summary(name: str, values: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(values):.2f}s, worst {max(values):.2f}s over {len(values)} runs"
    )


@pytest.mark.timeout(600 + 120 * RUNS)
def test_failover_and_switchover_figures(pair: Pair) -> None:  # noqa: F811 (the fixture)
    writer = Writer(pair.pooled, deadline=3600, limit=10**7)
    writer.start()
    rto, journal_rto, pauses, losses = [], [], [], []
    primary, standby = "p1", "p2"
    period = 0  # where the current primary's acknowledgements begin
    try:
        wait_for(lambda: len(writer.acked) >= 50, timeout=60, what="the writer's first commits")
        for _ in range(RUNS):
            count = len(writer.acked)
            cut = time.time()
            pair.net.link(primary, "down")
            since = datetime.fromtimestamp(cut, UTC).isoformat()
            result = pair.drkit("-o", "json", "failover", "--to", MEMBER[standby], "--since", since)
            assert result.code == 0, result.stdout + result.stderr
            wait_for(
                lambda s=HOSTS[standby], c=count: any(a.server == s for a in writer.acked[c:]),
                timeout=60,
                what="a commit on the new primary",
            )
            index = next(
                i for i in range(count, len(writer.acked)) if writer.acked[i].server == HOSTS[standby]
            )
            first = writer.acked[index].at
            journal = result.json()
            present = set(pair.rows(standby, "select n from w"))
            ours = writer.acked[period:index]
            missing = [a for a in ours if a.server == HOSTS[primary] and a.n not in present]
            period = index
            losses.append((rpo_covers_the_loss(journal, missing), journal["measures"][0]["rpo_seconds"]))
            rto.append(first - cut)
            journal_rto.append(journal["measures"][0]["rto_seconds"])
            pair.net.link(primary, "up")
            rejoin = pair.drkit("replica", "rejoin", MEMBER[primary])
            assert rejoin.code == 0, rejoin.stdout + rejoin.stderr
            primary, standby = standby, primary
        for _ in range(RUNS):
            result = pair.drkit("-o", "json", "switchover", "--to", MEMBER[standby])
            assert result.code == 0, result.stdout + result.stderr
            pauses.append(result.json()["measures"][0]["rto_seconds"])
            primary, standby = standby, primary
    finally:
        writer.stop()
    lost = sum(1 for real, _rpo in losses if real > 0)
    print(
        f"\n{_summary('failover RTO (link cut -> writer commits on the new primary via pgbouncer)', rto)}"
        f"\n{_summary('failover RTO in the journal (the cut -> a write on the new primary)', journal_rto)}"
        f"\n{_summary('switchover write pause (restore_from_archive: true)', pauses)}"
        f"\nRPO >= real loss in every run: {len(losses)} of {len(losses)} "
        f"(runs losing acknowledged commits: {lost}; (real, RPO) s: "
        f"{', '.join(f'({r:.3f}, {p:.3f})' for r, p in losses)})"
        f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
