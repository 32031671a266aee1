"""The journal of a recovery or a drill: the evidence (Chaos Toolkit's journal, for backups).

A journal records the run's parameters, the machine and versions, each step with its start,
end, outcome and facts, the moment a failure was injected (drills) and, per service, the
measured RTO and RPO against the targets. It is written after every step (fsynced), so an
interrupted recovery resumes from it and a report is rendered from it alone.

RTO of a service: from the failure (a drill: the moment it was injected; a recovery: the
moment the recovery started, unless the operator gave the incident's time) to the moment
the service was verified healthy. RPO: the time of the failure minus the time of the newest
data recovered (PostgreSQL: the last replayed transaction; others: their backup's moment).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from drkit.domain.errors import IntegrityError, UnsupportedFormatError

JOURNAL_FORMAT = 1


class RunKind(StrEnum):
    RECOVERY = "recovery"
    DRILL = "drill"
    FAILOVER = "failover"  # a switchover or a failover of a replicated PostgreSQL service


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # started; a journal left in this state was interrupted
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNDONE = "undone"


class Verdict(StrEnum):
    RUNNING = "running"
    PASSED = "passed"  # recovered, verified, every target met
    MISSED_TARGET = "missed-target"  # recovered and verified, a target missed (exit 4)
    FAILED = "failed"  # the recovery or its verification failed (exit 1)
    ABORTED = "aborted"  # stopped by the operator (declined a step)


@dataclass(frozen=True)
class StepRecord:
    name: str
    title: str
    destructive: bool = False
    service: str | None = None
    status: StepStatus = StepStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["started_at"] = _iso(self.started_at)
        data["finished_at"] = _iso(self.finished_at)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        return cls(
            name=str(data["name"]),
            title=str(data.get("title", data["name"])),
            destructive=bool(data.get("destructive", False)),
            service=data.get("service"),
            status=StepStatus(data.get("status", "pending")),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            detail=str(data.get("detail", "")),
            facts=dict(data.get("facts") or {}),
        )


@dataclass(frozen=True)
class ServiceMeasure:
    """One service's measured RTO and RPO against its targets (seconds; None: not measured)."""

    service: str
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    rto_target: float | None = None
    rpo_target: float | None = None
    healthy_at: datetime | None = None
    recovered_to: datetime | None = None  # the newest data the recovery gave back
    detail: str = ""

    @property
    def rto_met(self) -> bool | None:
        return _met(self.rto_seconds, self.rto_target)

    @property
    def rpo_met(self) -> bool | None:
        return _met(self.rpo_seconds, self.rpo_target)

    @property
    def missed(self) -> bool:
        return self.rto_met is False or self.rpo_met is False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy_at"] = _iso(self.healthy_at)
        data["recovered_to"] = _iso(self.recovered_to)
        data["rto_met"] = self.rto_met
        data["rpo_met"] = self.rpo_met
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceMeasure:
        return cls(
            service=str(data["service"]),
            rto_seconds=_float(data.get("rto_seconds")),
            rpo_seconds=_float(data.get("rpo_seconds")),
            rto_target=_float(data.get("rto_target")),
            rpo_target=_float(data.get("rpo_target")),
            healthy_at=_time(data.get("healthy_at")),
            recovered_to=_time(data.get("recovered_to")),
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class Journal:
    run_id: str
    kind: RunKind
    scenario: str
    stack: str
    started_at: datetime
    parameters: dict[str, Any] = field(default_factory=dict)
    steps: tuple[StepRecord, ...] = ()
    finished_at: datetime | None = None
    failure_at: datetime | None = None  # drills: when the failure was injected
    measures: tuple[ServiceMeasure, ...] = ()
    verdict: Verdict = Verdict.RUNNING
    error: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)  # machine, versions, data sizes
    format: int = JOURNAL_FORMAT

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def with_step(self, record: StepRecord) -> Journal:
        """The journal with `record` replacing the step of the same name (or appended)."""
        steps = [record if s.name == record.name else s for s in self.steps]
        if not any(s.name == record.name for s in self.steps):
            steps.append(record)
        return replace(self, steps=tuple(steps))

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def fatal_step(self) -> StepRecord | None:
        """The failed step that ended the run (a failed or aborted run stops at it)."""
        if self.verdict not in (Verdict.FAILED, Verdict.ABORTED):
            return None
        failed = [s for s in self.steps if s.status is StepStatus.FAILED]
        return failed[-1] if failed else None

    @property
    def warnings(self) -> tuple[StepRecord, ...]:
        """Failed steps that did not end the run (a non-critical step: the run went on). The
        CLI and the reports call them warnings, never failures of the run."""
        fatal = self.fatal_step
        return tuple(s for s in self.steps if s.status is StepStatus.FAILED and s is not fatal)

    def verdict_words(self) -> str:
        """`passed`, `passed with 1 warning`, `failed`: what the CLI and the report's badge say."""
        count = len(self.warnings)
        if not count:
            return self.verdict.value
        return f"{self.verdict.value} with {count} warning{'s' if count > 1 else ''}"

    @property
    def resumable(self) -> bool:
        return self.verdict is Verdict.RUNNING or (
            self.verdict is Verdict.FAILED and any(s.status is not StepStatus.SUCCEEDED for s in self.steps)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "run_id": self.run_id,
            "kind": self.kind.value,
            "scenario": self.scenario,
            "stack": self.stack,
            "parameters": self.parameters,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "failure_at": _iso(self.failure_at),
            "verdict": self.verdict.value,
            "error": self.error,
            "environment": self.environment,
            "steps": [s.to_dict() for s in self.steps],
            "measures": [m.to_dict() for m in self.measures],
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Journal:
        version = int(data.get("format", JOURNAL_FORMAT))
        if version > JOURNAL_FORMAT:
            raise UnsupportedFormatError(
                f"journal {data.get('run_id', '?')} has format {version}, newer than this drkit reads "
                f"({JOURNAL_FORMAT})"
            )
        try:
            started = _time(data["started_at"])
            if started is None:
                raise ValueError("started_at is empty")
            return cls(
                run_id=str(data["run_id"]),
                kind=RunKind(data["kind"]),
                scenario=str(data["scenario"]),
                stack=str(data["stack"]),
                started_at=started,
                parameters=dict(data.get("parameters") or {}),
                steps=tuple(StepRecord.from_dict(s) for s in data.get("steps", [])),
                finished_at=_time(data.get("finished_at")),
                failure_at=_time(data.get("failure_at")),
                measures=tuple(ServiceMeasure.from_dict(m) for m in data.get("measures", [])),
                verdict=Verdict(data.get("verdict", "running")),
                error=data.get("error"),
                environment=dict(data.get("environment") or {}),
                format=version,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise IntegrityError(f"journal {data.get('run_id', '?')} is damaged: {exc}") from exc

    @classmethod
    def from_json(cls, raw: bytes) -> Journal:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"a journal is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise IntegrityError("a journal is not a JSON object")
        return cls.from_dict(data)


def new_run_id(kind: RunKind, scenario: str, now: datetime) -> str:
    """Sorts by time: `20261130T031500Z-drill-db-corruption`."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S}Z-{kind.value}-{scenario.replace(' ', '-')}"


def verdict_of(measures: tuple[ServiceMeasure, ...]) -> Verdict:
    """The verdict of a run that recovered (no critical step failed): a target missed or not."""
    if any(m.missed for m in measures):
        return Verdict.MISSED_TARGET
    return Verdict.PASSED


def _met(value: float | None, target: float | None) -> bool | None:
    if value is None or target is None:
        return None
    return value <= target


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromisoformat(str(value))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
