"""Journals built in code for the report tests: a drill of db-corruption that missed its RTO
(one service over target, a step never started, the failure injected 40 s in), and the
drills of the same scenario before it, for the trend."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from drkit.domain.journal import Journal, RunKind, ServiceMeasure, StepRecord, StepStatus, Verdict

START = datetime(2026, 11, 30, 3, 0, 0, tzinfo=UTC)
ENVIRONMENT = {
    "machine": {"host": "ci-runner-7", "cpus": 2, "memory": "3.8 GiB"},
    "versions": {"postgres": "15.8", "redis": "7.0.15", "drkit": "0.1.0"},
    "data_sizes": {"postgres": "1.2 GiB", "objects": "310 MiB"},
}


def at(seconds: float, base: datetime = START) -> datetime:
    return base + timedelta(seconds=seconds)


def step(name: str, start: float | None, end: float | None, status: StepStatus, **kw: object) -> StepRecord:
    base = kw.pop("base", START)
    assert isinstance(base, datetime)
    return StepRecord(
        name=name,
        title=str(kw.pop("title", f"{name} the thing")),
        status=status,
        started_at=None if start is None else at(start, base),
        finished_at=None if end is None else at(end, base),
        **kw,  # type: ignore[arg-type]
    )


def missed_drill() -> Journal:
    """Postgres recovered in 95 s against a 60 s RTO target: MISSED; redis met both."""
    ok = StepStatus.SUCCEEDED
    steps = (
        step("build-copy", 0, 30, ok, detail="isolated stack on ports 25432.."),
        step("capture", 30, 38, ok, detail="4 tables, 10234 rows | checksums"),
        step("inject", 38, 40, ok, destructive=True, detail="<b>bytes</b> written into relation 16384"),
        step("stop", 40, 45, ok, service="postgres", destructive=True),
        step("move-aside", 45, 47, ok, service="postgres", destructive=True),
        step("restore", 47, 120, ok, service="postgres", destructive=True, detail="base + WAL to latest"),
        step("redis", 41, 60, ok, service="redis"),
        step("verify", 120, 135, ok, detail="integrity checks: 6 passed"),
        step("report-copy", None, None, StepStatus.SKIPPED),
    )
    measures = (
        ServiceMeasure("postgres", 95.0, 4.2, 60.0, 300.0, healthy_at=at(135), recovered_to=at(35.8)),
        ServiceMeasure("redis", 20.0, 30.0, 120.0, 60.0, healthy_at=at(60), recovered_to=at(10)),
    )
    return Journal(
        run_id="20261130T030000Z-drill-db-corruption",
        kind=RunKind.DRILL,
        scenario="db-corruption",
        stack="demo",
        started_at=START,
        parameters={"targets": {"backup": "20261130T020000Z-base"}, "isolated": True},
        steps=steps,
        finished_at=at(136),
        failure_at=at(40),
        measures=measures,
        verdict=Verdict.MISSED_TARGET,
        environment=ENVIRONMENT,
    )


PAST_RTO = (50.0, 55.0, 58.0)


def past_drills() -> list[Journal]:
    """Three earlier passing drills of the same scenario (a week apart), a drill of another
    scenario, and a later one: the trend must take only the first three."""
    current = missed_drill()
    runs = []
    for index, rto in enumerate(PAST_RTO):
        base = START - timedelta(days=7 * (len(PAST_RTO) - index))
        measures = (
            ServiceMeasure("postgres", rto, 3.0 + index, 60.0, 300.0),
            ServiceMeasure("redis", 18.0, 25.0, 120.0, 60.0),
        )
        runs.append(
            replace(
                current,
                run_id=f"{base:%Y%m%dT%H%M%S}Z-drill-db-corruption",
                started_at=base,
                failure_at=at(40, base),
                finished_at=at(rto + 45, base),
                steps=(step("restore", 0, rto, StepStatus.SUCCEEDED, base=base),),
                measures=measures,
                verdict=Verdict.PASSED,
            )
        )
    other = replace(runs[0], run_id="20261120T030000Z-drill-full-outage", scenario="full-outage")
    later_base = START + timedelta(days=1)
    later = replace(runs[0], run_id=f"{later_base:%Y%m%dT%H%M%S}Z-drill-db-corruption", started_at=later_base)
    return [*runs, other, later]


def failed_recovery() -> Journal:
    """A recovery whose restore step failed, with a step left interrupted: no failure_at."""
    steps = (
        step("assess", 0, 3, StepStatus.SUCCEEDED, service="postgres"),
        step("restore", 3, 20, StepStatus.FAILED, service="postgres", detail="the archive is unreachable"),
        step("redis", 4, None, StepStatus.RUNNING, service="redis"),
        step("smoke", None, None, StepStatus.PENDING),
    )
    return Journal(
        run_id="20261130T040000Z-recovery-db-corruption",
        kind=RunKind.RECOVERY,
        scenario="db-corruption",
        stack="demo",
        started_at=START + timedelta(hours=1),
        steps=tuple(
            replace(
                s,
                started_at=s.started_at and s.started_at + timedelta(hours=1),
                finished_at=s.finished_at and s.finished_at + timedelta(hours=1),
            )
            for s in steps
        ),
        finished_at=START + timedelta(hours=1, seconds=25),
        verdict=Verdict.FAILED,
        error="restore: the archive is unreachable",
    )
