"""Compute a `ReportModel` from a journal and the journals before it (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from drkit.domain.journal import Journal, ServiceMeasure, StepRecord, StepStatus, Verdict
from drkit.engines.reports.model import (
    FAILED,
    MET,
    MISSED,
    NOT_MEASURED,
    Escalation,
    Gauge,
    Marker,
    ReportModel,
    RunSummary,
    ServiceVerdict,
    Timeline,
    TimelineBar,
    TrendPoint,
    TrendRun,
    TrendSeries,
)

TREND_RUNS = 20  # the newest runs of the scenario a trend shows

VERDICT_LABELS = {
    Verdict.PASSED: "PASSED",
    Verdict.MISSED_TARGET: "MISSED TARGET",
    Verdict.FAILED: "FAILED",
    Verdict.ABORTED: "ABORTED",
    Verdict.RUNNING: "RUNNING (unfinished or interrupted)",
}


def build_report(journal: Journal, history: Iterable[Journal] = ()) -> ReportModel:
    """The report of `journal`; `history` holds the stored journals (any scenario, any order,
    the journal itself or not) from which the trend is drawn."""
    runs = trend_runs(journal, history)
    incident_at, source = incident(journal)
    return ReportModel(
        run_id=journal.run_id,
        kind=journal.kind.value,
        scenario=journal.scenario,
        stack=journal.stack,
        verdict=journal.verdict.value,
        verdict_label=VERDICT_LABELS[journal.verdict],
        started_at=journal.started_at,
        finished_at=journal.finished_at,
        seconds=journal.seconds,
        failure_at=journal.failure_at,
        incident_at=incident_at,
        incident_source=source,
        error=journal.error,
        services=service_verdicts(journal),
        timeline=timeline(journal),
        environment=flatten({k: v for k, v in journal.environment.items() if k != "escalation"}),
        parameters=flatten(journal.parameters),
        trend=trend(journal, runs),
        trend_runs=tuple(
            TrendRun(r.run_id, r.kind.value, r.started_at, r.verdict.value, r.run_id == journal.run_id)
            for r in runs
        ),
        escalation=escalation(journal),
    )


def escalation(journal: Journal) -> Escalation | None:
    """The contacts and escalation path the journal recorded (None: it recorded none)."""
    record = journal.environment.get("escalation")
    if not isinstance(record, dict):
        return None
    contacts = []
    for c in record.get("contacts") or []:
        if isinstance(c, dict):
            reach = ", ".join(str(c[k]) for k in ("phone", "email", "chat", "notes") if c.get(k))
            contacts.append((str(c.get("name", "")), str(c.get("role", "")), reach))
    return Escalation(tuple(contacts), tuple(str(p) for p in record.get("path") or []))


def summarize(journal: Journal) -> RunSummary:
    return RunSummary(
        run_id=journal.run_id,
        kind=journal.kind.value,
        scenario=journal.scenario,
        stack=journal.stack,
        started_at=journal.started_at,
        seconds=journal.seconds,
        verdict=journal.verdict.value,
        services=service_verdicts(journal),
    )


def incident(journal: Journal) -> tuple[datetime | None, str]:
    """The moment RTO and RPO count from, as the runbook engine measures them: a drill's
    injected failure, a recovery's `--since` (the incident's start), else its own start."""
    if journal.failure_at is not None:
        return journal.failure_at, "failure injected"
    since = journal.parameters.get("since")
    if since:
        try:
            return datetime.fromisoformat(str(since)), "--since"
        except ValueError:
            return None, f"--since {since}"
    return journal.started_at, f"{journal.kind.value} start"


def gauge(metric: str, seconds: float | None, target: float | None) -> Gauge:
    met = None if seconds is None or target is None else seconds <= target
    return Gauge(metric, seconds, target, met, met is False)


def service_verdicts(journal: Journal) -> tuple[ServiceVerdict, ...]:
    """One row per service measured, named by a step, or named as the run's `service`
    parameter (the service a scenario recovers), measured ones first. A failed run fails
    the service it was recovering even when its failed step names none."""
    failed = {s.service for s in journal.steps if s.status is StepStatus.FAILED and s.service}
    target = journal.parameters.get("service")
    named = [s.service for s in journal.steps if s.service]
    if isinstance(target, str):
        named.append(target)
        if journal.verdict is Verdict.FAILED:
            failed.add(target)
    rows = [_measured(m, m.service in failed) for m in journal.measures]
    seen = {m.service for m in journal.measures}
    for service in named:
        if service not in seen:
            seen.add(service)
            verdict = FAILED if service in failed else NOT_MEASURED
            rows.append(ServiceVerdict(service, verdict, gauge("RTO", None, None), gauge("RPO", None, None)))
    return tuple(rows)


def _measured(m: ServiceMeasure, step_failed: bool) -> ServiceVerdict:
    rto = gauge("RTO", m.rto_seconds, m.rto_target)
    rpo = gauge("RPO", m.rpo_seconds, m.rpo_target)
    if step_failed:
        verdict = FAILED
    elif rto.missed or rpo.missed:
        verdict = MISSED
    elif rto.met or rpo.met:
        verdict = MET
    else:
        verdict = NOT_MEASURED
    return ServiceVerdict(m.service, verdict, rto, rpo, m.healthy_at, m.recovered_to, m.detail)


def timeline(journal: Journal) -> Timeline:
    """Every step as a bar from its start to its end, seconds after the earliest moment
    (the run's start or the failure's); the failure and each service's healthy moment as
    markers."""
    moments = [journal.started_at] + ([journal.failure_at] if journal.failure_at else [])
    origin = min(moments + [s.started_at for s in journal.steps if s.started_at is not None])
    last = _last_moment(journal)

    def at(moment: datetime) -> float:
        return (moment - origin).total_seconds()

    bars = tuple(_bar(step, at, at(last)) for step in journal.steps)
    markers = [Marker("failure injected", at(journal.failure_at), "failure")] if journal.failure_at else []
    markers += [
        Marker(f"{m.service} healthy", at(m.healthy_at), "healthy")
        for m in journal.measures
        if m.healthy_at is not None
    ]
    span = max([at(last), *(m.at for m in markers), *(b.end or 0.0 for b in bars)])
    return Timeline(origin, span if span > 0 else 1.0, bars, tuple(markers))


def _last_moment(journal: Journal) -> datetime:
    moments = [journal.started_at]
    moments += [m for s in journal.steps for m in (s.started_at, s.finished_at) if m is not None]
    moments += [m.healthy_at for m in journal.measures if m.healthy_at is not None]
    if journal.failure_at is not None:
        moments.append(journal.failure_at)
    if journal.finished_at is not None:
        moments.append(journal.finished_at)
    return max(moments)


def _bar(step: StepRecord, at: Callable[[datetime], float], run_end: float) -> TimelineBar:
    start = at(step.started_at) if step.started_at else None
    end = at(step.finished_at) if step.finished_at else None
    interrupted = start is not None and end is None
    if interrupted:
        end = max(run_end, start or 0.0)
    return TimelineBar(
        name=step.name,
        title=step.title,
        service=step.service,
        status=step.status.value,
        destructive=step.destructive,
        start=start,
        end=end,
        seconds=step.seconds,
        interrupted=interrupted,
        detail=step.detail,
    )


def trend_runs(journal: Journal, history: Iterable[Journal]) -> list[Journal]:
    """The runs of the same scenario on the same stack up to this one (it included), oldest
    first, the newest TREND_RUNS of them."""
    same = {
        j.run_id: j
        for j in history
        if j.scenario == journal.scenario and j.stack == journal.stack and j.started_at <= journal.started_at
    }
    same[journal.run_id] = journal
    return sorted(same.values(), key=lambda j: (j.started_at, j.run_id))[-TREND_RUNS:]


def trend(journal: Journal, runs: Sequence[Journal]) -> tuple[TrendSeries, ...]:
    """Per service measured in this run or the runs before it, its RTO and its RPO in each run
    (None where not measured), against the newest target known; a figure no run measured
    (a service without an RPO) has no series."""
    newest_first = [journal, *reversed(runs)]
    latest: dict[str, ServiceMeasure] = {}
    for run in newest_first:
        for measure in run.measures:
            latest.setdefault(measure.service, measure)
    series: list[TrendSeries] = []
    for service, measure in latest.items():
        for metric in ("RTO", "RPO"):
            target = measure.rto_target if metric == "RTO" else measure.rpo_target
            points = tuple(_point(run, service, metric, run.run_id == journal.run_id) for run in runs)
            if any(p.seconds is not None for p in points):  # never measured: nothing to draw
                series.append(TrendSeries(service, metric, target, points))
    return tuple(series)


def _point(run: Journal, service: str, metric: str, current: bool) -> TrendPoint:
    measure = next((m for m in run.measures if m.service == service), None)
    value = None
    if measure is not None:
        value = measure.rto_seconds if metric == "RTO" else measure.rpo_seconds
    return TrendPoint(run.run_id, run.kind.value, run.started_at, run.verdict.value, value, current)


def flatten(data: dict[str, Any], prefix: str = "") -> tuple[tuple[str, str], ...]:
    """Nested mappings as sorted (dotted key, text) pairs, for a two-column table."""
    rows: list[tuple[str, str]] = []
    for key in sorted(data, key=str):
        value = data[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            rows.append((name, ", ".join(str(v) for v in value)))
        else:
            rows.append((name, "" if value is None else str(value)))
    return tuple(rows)
