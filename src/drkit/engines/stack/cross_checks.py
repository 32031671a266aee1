"""After a stack-wide restore: do the services agree with each other?

- every nchat_attachments row's object exists in the object store with the recorded hash;
- the search index holds as many documents as its source table.
Checks collect results; they never raise.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drkit.adapters.postgres.client import rows, service_dsn
from drkit.adapters.s3.objects import ObjectStore, endpoint_for
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError, NotFoundError
from drkit.engines.core.workspace import Workspace
from drkit.engines.search.rebuild import search_count_checks


def cross_service_checks(ws: Workspace) -> list[CheckResult]:
    results: list[CheckResult] = []
    kinds = {s.kind for s in ws.stack.services.values()}
    if {"postgres", "s3"} <= kinds:
        results.append(attachments_check(ws))
    if {"postgres", "meilisearch"} <= kinds:
        results.extend(search_count_checks(ws.stack))
    return results


NAME = "attachments match their objects"


ATTACHMENTS_SQL = "select bucket, object_key, sha256 from nchat_attachments order by bucket, object_key"


TABLE_SQL = "select to_regclass('nchat_attachments') is not null"


WORKERS = 8


def attachments_check(ws: Workspace) -> CheckResult:
    try:
        postgres = ws.postgres()
        store = ObjectStore(endpoint_for(ws.stack.services_of_kind("s3")[0]))
        dsn = service_dsn(postgres)
        if not rows(dsn, TABLE_SQL)[0][0]:
            return CheckResult(NAME, Status.WARNING, "no nchat_attachments table: nothing to compare", False)
        wanted = rows(dsn, ATTACHMENTS_SQL)
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cross-objects") as pool:
            problems = [p for p in pool.map(lambda r: _problem(store, r), wanted) if p]
    except DrkitError as exc:
        return CheckResult(NAME, Status.FAILED, exc.message)
    except Exception as exc:  # a check reports, it does not raise
        return CheckResult(NAME, Status.FAILED, f"{type(exc).__name__}: {exc}")
    if problems:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        return CheckResult(NAME, Status.FAILED, f"{len(problems)} of {len(wanted)} attachments: {shown}")
    return CheckResult(NAME, Status.OK, f"{len(wanted)} objects present with their recorded SHA-256")


def _problem(store: ObjectStore, row: tuple[Any, ...]) -> str | None:
    bucket, key, expected = (str(v) for v in row)
    try:
        actual = store.sha256_of(bucket, key)
    except NotFoundError:
        return f"{bucket}/{key} is missing"
    return None if actual == expected else f"{bucket}/{key} has other content"
