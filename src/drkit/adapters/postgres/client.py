"""Queries through psycopg, with a connect timeout and one clear error when the server is down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo

from drkit.domain.errors import OperationError
from drkit.domain.stack import Service


def make_dsn(dsn: str, *, password: str | None = None, **overrides: Any) -> str:
    params = conninfo.conninfo_to_dict(dsn)
    if password is not None:
        params["password"] = password
    params.setdefault("connect_timeout", 10)
    params.update({k: v for k, v in overrides.items() if v is not None})
    return conninfo.make_conninfo("", **params)


def service_dsn(service: Service, **overrides: Any) -> str:
    """The one way drkit builds a connection string for a configured PostgreSQL service:
    its `dsn` with its password (from its secret reference) and any overrides."""
    if not service.dsn:
        raise OperationError(f"service {service.name} has no dsn configured")
    return make_dsn(service.dsn, password=service.password, **overrides)


def describe(dsn: str) -> str:
    p = conninfo.conninfo_to_dict(dsn)
    return f"{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"


@contextmanager
def connect(dsn: str, *, autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection refused"
        raise OperationError(f"cannot connect to PostgreSQL at {describe(dsn)}: {first}") from exc
    try:
        yield conn
    finally:
        conn.close()


def scalar(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row, or None (also for statements returning no rows)."""
    with connect(dsn) as conn:
        cur = conn.execute(sql, params)
        if cur.description is None:
            return None
        row = cur.fetchone()
        return row[0] if row else None


def execute(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    with connect(dsn) as conn:
        conn.execute(sql, params)


def rows(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with connect(dsn) as conn:
        return list(conn.execute(sql, params).fetchall())


ROW_COUNTS_SQL = """
select n.nspname || '.' || c.relname
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
order by 1
"""


def row_counts(dsn: str) -> dict[str, int]:
    """Exact row count of every user table of one database (`schema.table` -> count)."""
    counts: dict[str, int] = {}
    with connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(ROW_COUNTS_SQL).fetchall()]
        for table in tables:
            schema, _, name = table.partition(".")
            query = psycopg.sql.SQL("select count(*) from {}.{}").format(
                psycopg.sql.Identifier(schema), psycopg.sql.Identifier(name)
            )
            row = conn.execute(query).fetchone()
            counts[table] = int(row[0]) if row else 0
    return counts
