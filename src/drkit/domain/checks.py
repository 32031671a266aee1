"""Results of checks: collected, never raised (Barman's CheckStrategy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from drkit.domain.errors import DrkitError


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str = ""
    critical: bool = True

    @property
    def failed_critically(self) -> bool:
        return self.status is Status.FAILED and self.critical


def any_critical_failure(results: list[CheckResult] | tuple[CheckResult, ...]) -> bool:
    return any(r.failed_critically for r in results)


def guard(name: str, fn: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    """Run a group of checks; what it raises becomes one failed result named `name`."""
    try:
        return fn()
    except DrkitError as exc:
        return [CheckResult(name, Status.FAILED, exc.message)]
    except Exception as exc:  # a check must report, not crash the others
        return [CheckResult(name, Status.FAILED, f"{type(exc).__name__}: {exc}")]


@dataclass(frozen=True)
class Expectation:
    """What a check's query result must satisfy; unset bounds are not checked."""

    equals: float | None = None
    at_most: float | None = None
    at_least: float | None = None
    equals_query: str | None = None
    tolerance: float = 0.0


@dataclass(frozen=True)
class IntegrityCheck:
    """A declared data check: a query (or a built-in) and what its single value must be."""

    name: str
    service: str = "postgres"
    database: str | None = None
    query: str | None = None
    builtin: str | None = None
    expect: Expectation = Expectation()
    critical: bool = True
