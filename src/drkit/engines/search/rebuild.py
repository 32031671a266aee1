"""`drkit search rebuild`: an index rebuilt from PostgreSQL, the fallback that needs no backup.

The rows come through a server-side cursor in a read-only transaction (memory stays flat
whatever the table's size), in batches; each batch is one documents task, waited for
before the next is sent. When the index exists, the rebuild fills a fresh index with the
live one's settings and swaps it in at the end (`POST /swap-indexes`): searches keep
working on the old documents until then, and a rebuild that fails midway leaves the live
index as it was. Meilisearch masks embedders' API keys when it returns settings: a live index
with one is rebuilt only when each key is given by reference (engines/search/secrets.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from drkit.adapters.meilisearch import MeilisearchClient
from drkit.adapters.postgres.client import connect, scalar, service_dsn
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError, UsageError
from drkit.domain.stack import Service, Stack
from drkit.engines.search.secrets import settings_to_copy
from drkit.engines.search.server import client_for
from drkit.infra.clock import Clock, SystemClock

TASK_TIMEOUT = 600.0
REBUILD_SUFFIX = "__drkit_rebuild"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class IndexSource:
    """Where an index's documents come from: a query and the column that identifies a row."""

    query: str
    primary_key: str = "id"


# Until stack.yaml carries `indexes:` on the meilisearch service, these are the known ones.
DEFAULT_SOURCES: dict[str, IndexSource] = {
    "messages": IndexSource("select id, content, channel_id, user_id, created_at from nchat_messages", "id"),
}


@dataclass(frozen=True)
class RebuildResult:
    index: str
    rows: int  # rows the query returned
    documents: int  # documents in the index afterwards
    batches: int
    swapped: bool  # True: built beside the live index and swapped in
    seconds: float

    @property
    def ok(self) -> bool:
        return self.rows == self.documents


def sources(service: Service | None) -> dict[str, IndexSource]:
    """The indexes configured on the service (`indexes:`), else the nchat defaults."""
    if service is not None and service.indexes:
        return {i.name: IndexSource(i.query, i.primary_key) for i in service.indexes}
    return dict(DEFAULT_SOURCES)


def source_for(
    index: str, query: str | None, primary_key: str | None, service: Service | None = None
) -> IndexSource:
    if query:
        return IndexSource(query, primary_key or "id")
    known = sources(service).get(index)
    if known is None:
        raise UsageError(
            f"no query known for index {index!r}: pass --query 'select ...'",
            hint="known indexes: " + ", ".join(sorted(sources(service))),
        )
    return IndexSource(known.query, primary_key or known.primary_key)


def postgres_dsn(stack: Stack, service: Service) -> str:
    """The database the index is built from: the PostgreSQL it depends on, else the only one."""
    candidates = [stack.services[n] for n in service.depends_on if stack.services[n].kind == "postgres"]
    candidates = candidates or stack.services_of_kind("postgres")
    if len(candidates) != 1 or not candidates[0].dsn:
        raise UsageError(f"cannot tell which PostgreSQL {service.name} is built from: list it in depends_on")
    return service_dsn(candidates[0])


def rebuild_index(
    stack: Stack,
    service: Service,
    index: str,
    source: IndexSource,
    *,
    batch_size: int = 1000,
    progress: Progress | None = None,
    clock: Clock | None = None,
    embedder_keys: Mapping[str, str] | None = None,
) -> RebuildResult:
    """Fill `index` from `source`; beside the live index (with its settings, each masked
    embedder key given by reference in `embedder_keys`) and swapped in, if there is one."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    clock = clock or SystemClock()
    began = clock.monotonic()
    dsn = postgres_dsn(stack, service)
    with client_for(service) as meili:
        live = meili.get_index(index)
        target = index + REBUILD_SUFFIX if live else index
        # read and checked before anything is touched: a masked key is refused here
        settings = settings_to_copy(meili.get_settings(index) if live else {}, index, embedder_keys or {})
        _prepare(meili, target, source.primary_key, settings=settings if live else None, clock=clock)
        rows = batches = 0
        for batch in _batches(dsn, source.query, batch_size):
            meili.wait_succeeded(
                meili.add_documents(target, batch, primary_key=source.primary_key),
                timeout=TASK_TIMEOUT,
                clock=clock,
            )
            rows, batches = rows + len(batch), batches + 1
            if progress:
                progress(rows)
        if live:
            meili.wait_succeeded(meili.swap_indexes(index, target), timeout=TASK_TIMEOUT, clock=clock)
            meili.wait_succeeded(meili.delete_index(target), timeout=TASK_TIMEOUT, clock=clock)
        documents = meili.index_count(index)
    return RebuildResult(index, rows, documents, batches, live is not None, clock.monotonic() - began)


def search_count_checks(stack: Stack) -> list[CheckResult]:
    """Each known index of each MeiliSearch holds as many documents as its query returns rows
    (after a stack-wide restore). Not critical: search can be rebuilt; the detail says how."""
    results: list[CheckResult] = []
    for service in stack.services_of_kind("meilisearch"):
        for index, source in sorted(sources(service).items()):
            name = f"{service.name} index {index} vs PostgreSQL"
            try:
                rows = int(scalar(postgres_dsn(stack, service), f"select count(*) from ({source.query}) q"))
                with client_for(service) as meili:
                    documents = meili.index_count(index) if meili.get_index(index) else None
            except DrkitError as exc:
                results.append(CheckResult(name, Status.FAILED, exc.message, critical=False))
                continue
            if documents == rows:
                results.append(
                    CheckResult(name, Status.OK, f"{documents} documents, {rows} rows", critical=False)
                )
                continue
            found = "no such index" if documents is None else f"{documents} documents"
            detail = f"{found}, {rows} rows: drkit search rebuild {index}"
            results.append(CheckResult(name, Status.WARNING, detail, critical=False))
    return results


def _prepare(
    meili: MeilisearchClient, target: str, primary_key: str, *, settings: dict[str, Any] | None, clock: Clock
) -> None:
    """An empty target index with the primary key (and the live index's settings)."""
    if meili.get_index(target) is not None:  # what an interrupted rebuild left, or stale documents
        meili.wait_succeeded(meili.delete_index(target), timeout=TASK_TIMEOUT, clock=clock)
    meili.wait_succeeded(
        meili.create_index(target, primary_key=primary_key), timeout=TASK_TIMEOUT, clock=clock
    )
    if settings:
        meili.wait_succeeded(meili.update_settings(target, settings), timeout=TASK_TIMEOUT, clock=clock)


def _batches(dsn: str, query: str, size: int) -> Iterator[list[dict[str, Any]]]:
    with connect(dsn, autocommit=False) as conn:
        conn.read_only = True  # a rebuild reads; a query that writes is refused by PostgreSQL
        with conn.cursor(name="drkit_search_rebuild") as cur:
            cur.itersize = size
            cur.execute(query.encode())
            names: list[str] = []
            while rows := cur.fetchmany(size):
                names = names or [c.name for c in cur.description or ()]
                yield [{n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in rows]
        conn.rollback()


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID | Decimal):
        return str(value) if isinstance(value, uuid.UUID) else float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value
