"""Row counts of every user table, cheap enough for a busy server.

Measured (PostgreSQL 15, a 460 MB table of 6M rows, cached): 0.11 s with its estimate
(6000025) against 1.0 s for an exact `count(*)`; uncached and on a loaded server the gap
is the whole table read.

At backup time no long transaction is held: a table up to `EXACT_MAX_BYTES` (by
`pg_class.relpages`, which needs no lock) is counted exactly with `count(*)`, each count in
its own short transaction (or savepoint) under a `statement_timeout` and a `lock_timeout`;
a larger table, or one whose count times out, gets the planner's estimate
(`pg_class.reltuples`, else the statistics' `n_live_tup`). Which counts are estimates is
returned, so the manifest can say so and `verify --deep` can compare exact counts exactly
and estimates with a tolerance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors

from drkit.adapters.postgres.client import connect, make_dsn
from drkit.domain.errors import OperationError

EXACT_MAX_BYTES = 64 * 1024 * 1024
COUNT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 1000

# Every user table (partitioned ones with their partitions' sizes and estimates summed). Sizes
# come from pg_class.relpages (as of the last VACUUM/ANALYZE), not pg_relation_size(), which
# would wait for the lock of a table a migration holds. The count statement is quoted by the
# server (format %I), so a name is never split or re-encoded by drkit: a schema may hold a dot,
# and a SQL_ASCII database's names any bytes (psycopg answers its text as bytes).
TABLES_SQL = """
select n.nspname || '.' || c.relname,
  format('select count(*) from %I.%I', n.nspname, c.relname),
  coalesce(sum(p.relpages::bigint * current_setting('block_size')::bigint), 0)::bigint,
  coalesce(sum(case when p.reltuples >= 0 then p.reltuples
                    else coalesce(pg_stat_get_live_tuples(p.oid), 0) end), 0)::bigint
from pg_class c join pg_namespace n on n.oid = c.relnamespace
left join lateral (select c.oid as relid union select relid from pg_partition_tree(c.oid)) t on true
left join pg_class p on p.oid = t.relid and p.relkind = 'r'
where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
group by c.oid, n.nspname, c.relname
order by 1
"""


@dataclass
class RowCounts:
    """{"db:schema.table": rows}; `estimated` names the keys whose count is an estimate."""

    counts: dict[str, int] = field(default_factory=dict)
    estimated: set[str] = field(default_factory=set)

    def merge(self, other: RowCounts) -> None:
        self.counts.update(other.counts)
        self.estimated |= other.estimated


def _name(value: str | bytes) -> str:
    """A table's name for the counts' keys. A SQL_ASCII database answers bytes: UTF-8 is read
    as such, any other byte is escaped (`caf\\xe9`), the same at backup and at verify time."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _statement(conn: psycopg.Connection[Any], value: str | bytes) -> bytes:
    """The count statement, as the server's bytes (sent back unchanged)."""
    return value if isinstance(value, bytes) else value.encode(conn.info.encoding)


def count_tables(conn: psycopg.Connection[Any], db: str, *, exact_max_bytes: int) -> RowCounts:
    """Count on `conn` (autocommit: one transaction per table; inside a transaction: one
    savepoint per table, so a timeout loses only that count)."""
    result = RowCounts()
    tables = conn.execute(TABLES_SQL).fetchall()
    for table, statement, size, estimate in tables:
        key = f"{db}:{_name(table)}"
        if int(size) <= exact_max_bytes:
            try:
                with conn.transaction():
                    row = conn.execute(_statement(conn, statement)).fetchone()
                result.counts[key] = int(row[0]) if row else 0
                continue
            except (errors.QueryCanceled, errors.LockNotAvailable):
                pass  # too slow or locked right now: the estimate below
            except psycopg.Error as exc:  # a damaged page, a missing file, ...
                first = (str(exc).strip().splitlines() or ["?"])[0]
                raise OperationError(f"counting the rows of {key} failed: {first}") from exc
        result.counts[key] = int(estimate)
        result.estimated.add(key)
    return result


def _limit(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"set statement_timeout = {COUNT_TIMEOUT_MS}")
    conn.execute(f"set lock_timeout = {LOCK_TIMEOUT_MS}")


def cheap_counts(
    dsn: str, databases: tuple[str, ...] | list[str], *, exact_max_bytes: int = EXACT_MAX_BYTES
) -> RowCounts:
    """Counts of a live server without holding a snapshot: see the module's docstring."""
    result = RowCounts()
    for db in databases:
        with connect(make_dsn(dsn, dbname=db)) as conn:
            _limit(conn)
            result.merge(count_tables(conn, db, exact_max_bytes=exact_max_bytes))
    return result


@contextmanager
def exported_snapshot(
    dsn: str, db: str, *, exact_max_bytes: int = EXACT_MAX_BYTES
) -> Iterator[tuple[str, RowCounts]]:
    """A REPEATABLE READ transaction on `db` exporting its snapshot, with the counts seen in
    it: give the snapshot to `pg_dump --snapshot` and the counts are those of the dump. Held
    until the block ends (pg_dump holds one as long itself)."""
    with connect(make_dsn(dsn, dbname=db), autocommit=False) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        _limit(conn)
        row = conn.execute("select pg_export_snapshot()").fetchone()
        counts = count_tables(conn, db, exact_max_bytes=exact_max_bytes)
        yield (str(row[0]) if row else ""), counts
        conn.rollback()


def exact_counts(dsn: str, databases: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Exact counts of every table (for a throwaway copy nobody else uses)."""
    result = RowCounts()
    for db in databases:
        with connect(make_dsn(dsn, dbname=db)) as conn:
            result.merge(count_tables(conn, db, exact_max_bytes=1 << 62))
    return result.counts
