"""Compare the row counts of a restored copy with those recorded at backup time.

A recorded count is exact (`count(*)`) or an estimate (`pg_class.reltuples`, for big tables
or a count that timed out); the manifest lists the estimates. Exact counts must be equal;
an estimate must be within `ESTIMATE_TOLERANCE` (or `ESTIMATE_SLACK` rows), and a miss is a
warning: an estimate is only as fresh as the table's last ANALYZE.
"""

from __future__ import annotations

from dataclasses import dataclass

from drkit.domain.checks import CheckResult, Status

ESTIMATE_TOLERANCE = 0.2
ESTIMATE_SLACK = 1000


@dataclass(frozen=True)
class Recorded:
    """What a manifest recorded. `settled`: nothing was written while the counts could
    differ from the backup's data, so an exact count that differs is a failure (else a
    warning: rows were written during the backup)."""

    counts: dict[str, int]
    estimated: frozenset[str] = frozenset()
    settled: bool = True


def near(estimate: int, actual: int) -> bool:
    return abs(actual - estimate) <= max(ESTIMATE_SLACK, ESTIMATE_TOLERANCE * max(estimate, actual))


def compare_counts(recorded: Recorded, actual: dict[str, int]) -> list[CheckResult]:
    expected = recorded.counts
    exact = [t for t in sorted(expected) if t not in recorded.estimated]
    estimated = [t for t in sorted(expected) if t in recorded.estimated]
    results: list[CheckResult] = []
    exact_status = Status.FAILED if recorded.settled else Status.WARNING
    note = "" if recorded.settled else " (writes ran during the backup; counts were taken at its end)"
    for t in exact:
        if actual.get(t) != expected[t]:
            restored = actual.get(t, "no table")
            results.append(
                CheckResult(f"rows {t}", exact_status, f"restored {restored} != recorded {expected[t]}{note}")
            )
    for t in estimated:
        got = actual.get(t)
        if got is None or not near(expected[t], got):
            results.append(
                CheckResult(
                    f"rows {t}",
                    Status.WARNING,
                    f"restored {got if got is not None else 'no table'} is not within "
                    f"{ESTIMATE_TOLERANCE:.0%} of the estimate {expected[t]} (pg_class.reltuples)",
                )
            )
    for t in sorted(set(actual) - set(expected)):
        results.append(
            CheckResult(f"rows {t}", exact_status, "table exists in the restore but not in the manifest")
        )
    if not results:
        total = sum(expected[t] for t in exact)
        summary = f"{len(exact)} tables: exact counts equal ({total} rows)"
        if estimated:
            summary += f"; {len(estimated)} big table(s) within {ESTIMATE_TOLERANCE:.0%} of their estimates"
        results.append(CheckResult("row counts", Status.OK, summary))
    return results
