"""Integrity expectations, and how checks turn every outcome into a result (never a raise)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drkit.adapters.postgres.checks import Finding, parse_amcheck_report, parse_builtin
from drkit.domain.checks import Expectation, IntegrityCheck, Status
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RepositorySpec, RuntimeSpec, Service, Stack
from drkit.engines.stack.integrity import describe_expectation, evaluate, run_integrity


@pytest.mark.parametrize(
    ("expect", "value", "reference", "passed", "offending"),
    [
        (Expectation(), 0, None, True, 0),  # no bound: a count that must be 0
        (Expectation(), 3, None, False, 3),
        (Expectation(equals=10), 10, None, True, 0),
        (Expectation(equals=10), 7, None, False, 3),
        (Expectation(equals=10, tolerance=2), 12, None, True, 0),
        (Expectation(equals=10, tolerance=2), 13.5, None, False, 1.5),
        (Expectation(at_most=5), 5, None, True, 0),
        (Expectation(at_most=5), 8, None, False, 3),
        (Expectation(at_least=100), 99, None, False, 1),
        (Expectation(at_least=1, at_most=3), 2, None, True, 0),
        (Expectation(at_least=1, at_most=3), 0, None, False, 1),
        (Expectation(equals_query="q"), 200, 200, True, 0),
        (Expectation(equals_query="q"), 198, 200, False, 2),
        (Expectation(equals_query="q", tolerance=5), 196, 200, True, 0),
        (Expectation(equals_query="q", tolerance=1), 205, 200, False, 4),
    ],
)
def test_evaluate(
    expect: Expectation, value: float, reference: float | None, passed: bool, offending: float
) -> None:
    verdict = evaluate(expect, value, reference)
    assert verdict.passed is passed
    assert verdict.offending == pytest.approx(offending)


def test_equals_query_needs_its_reference() -> None:
    with pytest.raises(ValueError, match="equals_query"):
        evaluate(Expectation(equals_query="select 1"), 1, None)


def test_expectations_read_well() -> None:
    assert describe_expectation(Expectation()) == "= 0"
    assert describe_expectation(Expectation(at_most=5, at_least=1)) == "<= 5, >= 1"
    assert describe_expectation(Expectation(equals_query="q", tolerance=2)) == "= equals_query ± 2"
    assert evaluate(Expectation(equals_query="q"), 3, 5).expected == "= 5 (from equals_query)"


def test_builtin_calls_parse() -> None:
    assert parse_builtin("pg_amcheck").name == "pg_amcheck"
    call = parse_builtin("expected_indexes(public.a_pkey,  auth.users_pkey )")
    assert (call.name, call.args) == ("expected_indexes", ("public.a_pkey", "auth.users_pkey"))
    with pytest.raises(UsageError, match="bad builtin"):
        parse_builtin("drop table x;")


def test_amcheck_report_names_each_corrupt_index() -> None:
    report = (
        'btree index "nchat.public.t_v":\n'
        "    ERROR:  invalid page in block 2 of relation base/5/16398\n"
        'btree index "nchat.public.t_pkey":\n'
        "    ERROR:  invalid page in block 1 of relation base/5/16396\n"
    )
    assert parse_amcheck_report(report) == (
        "btree index nchat.public.t_v: ERROR:  invalid page in block 2 of relation base/5/16398",
        "btree index nchat.public.t_pkey: ERROR:  invalid page in block 1 of relation base/5/16396",
    )
    assert parse_amcheck_report("") == ()


class FakeBackend:
    """Queries answered from a table; anything unknown raises, as a broken server would."""

    def __init__(self, numbers: dict[str, float], findings: dict[str, Finding]) -> None:
        self.numbers = numbers
        self.findings = findings

    def number(self, service: Service, database: str | None, sql: str) -> float:
        if sql not in self.numbers:
            raise OperationError("cannot connect to PostgreSQL at 127.0.0.1:5432/nchat: refused")
        return self.numbers[sql]

    def builtin(self, service: Service, database: str | None, call: str) -> Finding:
        return self.findings[call]


def stack(*checks: IntegrityCheck) -> Stack:
    pg = Service(name="postgres", kind="postgres", runtime=RuntimeSpec(type="local"), dsn="x")
    repo = RepositorySpec(name="r", type="fs", path="/tmp/r")
    return Stack(
        name="s", services={"postgres": pg}, repositories={"r": repo}, primary_repository="r", checks=checks
    )


def test_checks_collect_results_and_never_raise() -> None:
    checks = (
        IntegrityCheck("orphans", query="orphans"),
        IntegrityCheck("clean", query="clean"),
        IntegrityCheck("users", query="users", expect=Expectation(equals_query="auth"), critical=False),
        IntegrityCheck("broken", query="no such query"),
        IntegrityCheck("amcheck", builtin="pg_amcheck"),
        IntegrityCheck("elsewhere", service="mysql", query="orphans"),
    )
    backend = FakeBackend(
        {"orphans": 3, "clean": 0, "users": 49, "auth": 50},
        {"pg_amcheck": Finding(1, ("btree index nchat.public.t_pkey: ERROR: invalid page",))},
    )
    report = run_integrity(stack(*checks), backend)
    by_name = {r.name: r for r in report.results}
    assert [r.name for r in report.results] == [c.name for c in checks]
    assert (by_name["orphans"].status, by_name["orphans"].offending) == (Status.FAILED, 3)
    assert by_name["orphans"].detail == "3 offending"
    assert by_name["clean"].status is Status.OK and by_name["clean"].value == 0
    assert by_name["users"].status is Status.WARNING  # severity warning: not critical
    assert by_name["users"].offending == 1
    assert by_name["broken"].status is Status.FAILED
    assert by_name["broken"].detail.startswith("could not run: cannot connect")
    assert by_name["amcheck"].status is Status.FAILED
    assert "t_pkey" in by_name["amcheck"].detail
    assert "unknown service 'mysql'" in by_name["elsewhere"].detail
    assert report.failed_critically


def test_only_warnings_do_not_fail_critically() -> None:
    check = IntegrityCheck("users", query="users", expect=Expectation(at_most=0), critical=False)
    report = run_integrity(stack(check), FakeBackend({"users": 2}, {}))
    assert report.results[0].status is Status.WARNING
    assert not report.failed_critically


class SteppingClock:
    """Each reading is one second after the last: timings become exact."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return datetime(2026, 11, 26, tzinfo=UTC) + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        self.t += 1.0
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_each_check_and_the_run_are_timed_with_the_given_clock() -> None:
    checks = (IntegrityCheck("a", query="clean"), IntegrityCheck("b", query="clean"))
    report = run_integrity(stack(*checks), FakeBackend({"clean": 0}, {}), clock=SteppingClock())
    # run start 1; a: 2 -> 3; b: 4 -> 5; run end 6
    assert [r.seconds for r in report.results] == [1.0, 1.0]
    assert report.seconds == 5.0
