"""The report's data: plain frozen records, every figure in seconds, every verdict decided.

Renderers only lay these out; they decide nothing (a miss is `missed=True` here, not a
comparison made in a template)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# A service's verdict in a run.
MET = "met"
MISSED = "MISSED"
FAILED = "failed"
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Gauge:
    """One measured figure against its target (seconds; None: not measured / no target)."""

    metric: str  # "RTO" or "RPO"
    seconds: float | None
    target: float | None
    met: bool | None  # None when either side is missing
    missed: bool


@dataclass(frozen=True)
class ServiceVerdict:
    service: str
    verdict: str  # MET, MISSED, FAILED or NOT_MEASURED
    rto: Gauge
    rpo: Gauge
    healthy_at: datetime | None = None
    recovered_to: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class TimelineBar:
    """One step on the Gantt chart; start/end are seconds after the timeline's origin
    (None for a step that never started)."""

    name: str
    title: str
    service: str | None
    status: str
    destructive: bool
    start: float | None
    end: float | None
    seconds: float | None
    interrupted: bool  # started, never finished: drawn up to the end of the run
    detail: str


@dataclass(frozen=True)
class Marker:
    """A moment on the timeline: the failure injected, a service verified healthy."""

    label: str
    at: float  # seconds after the origin
    kind: str  # "failure" or "healthy"


@dataclass(frozen=True)
class Timeline:
    origin: datetime
    span: float  # seconds from the origin to the last moment drawn (> 0)
    bars: tuple[TimelineBar, ...]
    markers: tuple[Marker, ...]


@dataclass(frozen=True)
class TrendRun:
    """A run of the scenario the trend covers."""

    run_id: str
    kind: str
    started_at: datetime
    verdict: str
    current: bool


@dataclass(frozen=True)
class TrendPoint:
    run_id: str
    kind: str
    started_at: datetime
    verdict: str
    seconds: float | None
    current: bool


@dataclass(frozen=True)
class TrendSeries:
    """One service's RTO or RPO over the runs of the same scenario, oldest first."""

    service: str
    metric: str
    target: float | None
    points: tuple[TrendPoint, ...]


@dataclass(frozen=True)
class Escalation:
    """Who to call, as stack.yaml said when the run was journaled."""

    contacts: tuple[tuple[str, str, str], ...]  # (name, role, how to reach them)
    path: tuple[str, ...]


@dataclass(frozen=True)
class ReportModel:
    run_id: str
    kind: str
    scenario: str
    stack: str
    verdict: str  # the journal's verdict value: passed, missed-target, failed, aborted, running
    verdict_label: str  # what a reader sees: PASSED, MISSED TARGET, FAILED, ...
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    failure_at: datetime | None
    incident_at: datetime | None  # where RTO and RPO are measured from (None: not known)
    incident_source: str  # "failure injected", "--since", "recovery start"
    error: str | None
    services: tuple[ServiceVerdict, ...]
    timeline: Timeline
    environment: tuple[tuple[str, str], ...]
    parameters: tuple[tuple[str, str], ...]
    trend: tuple[TrendSeries, ...]
    trend_runs: tuple[TrendRun, ...]  # the runs the trend covers, oldest first
    escalation: Escalation | None = None

    @property
    def missed(self) -> bool:
        return any(s.verdict == MISSED for s in self.services)


@dataclass(frozen=True)
class RunSummary:
    """One stored journal, as `drkit drills list` shows it."""

    run_id: str
    kind: str
    scenario: str
    stack: str
    started_at: datetime
    seconds: float | None
    verdict: str
    services: tuple[ServiceVerdict, ...]


@dataclass(frozen=True)
class DamagedJournal:
    where: str
    reason: str


@dataclass(frozen=True)
class RunListing:
    runs: tuple[RunSummary, ...]
    damaged: tuple[DamagedJournal, ...]
