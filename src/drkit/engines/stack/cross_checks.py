"""After a stack-wide restore: do the services agree with each other?

- every nchat_attachments row's object exists in the object store with the recorded hash;
- the search index holds as many documents as its source table.
Checks collect results; they never raise.
"""

from __future__ import annotations

from drkit.domain.checks import CheckResult
from drkit.engines.core.workspace import Workspace


def cross_service_checks(ws: Workspace) -> list[CheckResult]:
    results: list[CheckResult] = []
    kinds = {s.kind for s in ws.stack.services.values()}
    if {"postgres", "s3"} <= kinds:
        from drkit.engines.stack.cross_objects import attachments_check

        results.append(attachments_check(ws))
    if {"postgres", "meilisearch"} <= kinds:
        from drkit.engines.search.rebuild import search_count_checks

        results.extend(search_count_checks(ws.stack))
    return results
