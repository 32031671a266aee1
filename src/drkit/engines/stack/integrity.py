"""Integrity checks: run every declared check, collect a result for each, never raise.

A check is a query that returns one number, or a built-in that counts problems; its
expectation says which numbers are fine. No expectation means "equals 0": a count of
offending rows. A failed check is FAILED when its severity is critical, else WARNING; a
check that could not run at all is reported the same way, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from drkit.adapters.postgres.checks import Finding, Target, parse_builtin, query_number, run_builtin
from drkit.domain.checks import Expectation, IntegrityCheck, Status
from drkit.domain.errors import ConfigError
from drkit.domain.stack import Service, Stack
from drkit.infra.clock import Clock, SystemClock

MAX_ITEMS = 5


@dataclass(frozen=True)
class Verdict:
    passed: bool
    offending: float
    expected: str


@dataclass(frozen=True)
class IntegrityResult:
    name: str
    service: str
    status: Status
    critical: bool
    value: float | None
    expected: str
    offending: float | None
    detail: str
    seconds: float

    @property
    def failed_critically(self) -> bool:
        return self.status is Status.FAILED and self.critical


@dataclass(frozen=True)
class IntegrityReport:
    results: tuple[IntegrityResult, ...]
    seconds: float

    @property
    def failed_critically(self) -> bool:
        return any(r.failed_critically for r in self.results)

    @property
    def problems(self) -> tuple[IntegrityResult, ...]:
        return tuple(r for r in self.results if r.status is not Status.OK)


class CheckBackend(Protocol):
    """How checks reach the data: a one-number query, or a named built-in."""

    def number(self, service: Service, database: str | None, sql: str) -> float: ...

    def builtin(self, service: Service, database: str | None, call: str) -> Finding: ...


class PostgresBackend:
    """The real backend: psycopg for queries, the adapter's built-ins (pg_amcheck, catalog)."""

    def number(self, service: Service, database: str | None, sql: str) -> float:
        return query_number(Target.of(service, database), sql)

    def builtin(self, service: Service, database: str | None, call: str) -> Finding:
        return run_builtin(parse_builtin(call), Target.of(service, database))


def evaluate(expect: Expectation, value: float, reference: float | None = None) -> Verdict:
    """Judge a value. `reference` is the result of `equals_query`, when there is one.

    `offending` is how far the value lies outside what is allowed (0 when it passes).
    The tolerance applies to `equals` and `equals_query`.
    """
    tol = expect.tolerance
    misses: list[float] = []
    if expect.equals is not None or not _has_bound(expect):
        target = 0.0 if expect.equals is None else expect.equals
        misses.append(max(0.0, abs(value - target) - tol))
    if expect.equals_query is not None:
        if reference is None:
            raise ValueError("equals_query needs the reference value")
        misses.append(max(0.0, abs(value - reference) - tol))
    if expect.at_most is not None:
        misses.append(max(0.0, value - expect.at_most))
    if expect.at_least is not None:
        misses.append(max(0.0, expect.at_least - value))
    offending = max(misses)
    return Verdict(offending == 0, offending, describe_expectation(expect, reference))


def describe_expectation(expect: Expectation, reference: float | None = None) -> str:
    """`= 0`, `<= 5`, `= 200 (from equals_query) ± 2`; before a run, `= equals_query`."""
    tol = _tol(expect.tolerance)
    parts: list[str] = []
    if expect.equals is not None or not _has_bound(expect):
        parts.append(f"= {_num(expect.equals or 0.0)}{tol}")
    if expect.equals_query is not None:
        shown = "equals_query" if reference is None else f"{_num(reference)} (from equals_query)"
        parts.append(f"= {shown}{tol}")
    if expect.at_most is not None:
        parts.append(f"<= {_num(expect.at_most)}")
    if expect.at_least is not None:
        parts.append(f">= {_num(expect.at_least)}")
    return ", ".join(parts)


def _has_bound(expect: Expectation) -> bool:
    bounds = (expect.equals, expect.at_most, expect.at_least, expect.equals_query)
    return any(b is not None for b in bounds)


def run_integrity(
    stack: Stack,
    backend: CheckBackend,
    *,
    checks: Sequence[IntegrityCheck] | None = None,
    on_result: Callable[[IntegrityResult], None] | None = None,
    clock: Clock | None = None,
) -> IntegrityReport:
    """Run the stack's checks (or `checks`) one after the other; collect every result."""
    clock = clock or SystemClock()
    began = clock.monotonic()
    results = []
    for check in stack.checks if checks is None else checks:
        result = run_check(stack, check, backend, clock=clock)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return IntegrityReport(tuple(results), clock.monotonic() - began)


def run_check(
    stack: Stack, check: IntegrityCheck, backend: CheckBackend, *, clock: Clock | None = None
) -> IntegrityResult:
    """One check; every error becomes a result (Barman's CheckStrategy)."""
    clock = clock or SystemClock()
    began = clock.monotonic()
    failed = Status.FAILED if check.critical else Status.WARNING

    expected = describe_expectation(check.expect)

    def result(status: Status, value: float | None, verdict: Verdict | None, detail: str) -> IntegrityResult:
        return IntegrityResult(
            name=check.name,
            service=check.service,
            status=status,
            critical=check.critical,
            value=value,
            expected=verdict.expected if verdict else expected,
            offending=verdict.offending if verdict else None,
            detail=detail,
            seconds=clock.monotonic() - began,
        )

    service = stack.services.get(check.service)
    if service is None:
        return result(failed, None, None, f"could not run: unknown service {check.service!r}")
    try:
        if check.builtin is not None:
            finding = backend.builtin(service, check.database, check.builtin)
            value, reference, detail = float(finding.count), None, _describe_finding(finding)
        else:
            if check.query is None:  # the config model requires query or builtin
                raise ConfigError(f"integrity check {check.name!r} has neither query nor builtin")
            value = backend.number(service, check.database, check.query)
            reference = None
            if check.expect.equals_query is not None:
                reference = backend.number(service, check.database, check.expect.equals_query)
            detail = ""
        verdict = evaluate(check.expect, value, reference)
    except Exception as exc:
        return result(failed, None, None, f"could not run: {_first_line(exc)}")
    if verdict.passed:
        return result(Status.OK, value, verdict, detail)
    off = f"{_num(verdict.offending)} offending"
    return result(failed, value, verdict, f"{off}; {detail}" if detail else off)


def _describe_finding(finding: Finding) -> str:
    shown = list(finding.items[:MAX_ITEMS])
    if len(finding.items) > MAX_ITEMS:
        shown.append(f"and {len(finding.items) - MAX_ITEMS} more")
    parts = ["; ".join(shown)] if shown else []
    if finding.note:
        parts.append(finding.note)
    return " | ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _tol(tolerance: float) -> str:
    return f" ± {_num(tolerance)}" if tolerance else ""


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc).strip() or type(exc).__name__
    return str(message).splitlines()[0]
