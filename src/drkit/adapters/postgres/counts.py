"""Row counts of every user table, taken in one snapshot per database."""

from __future__ import annotations

import psycopg
from psycopg import sql

from drkit.adapters.postgres.client import ROW_COUNTS_SQL, connect, make_dsn


def snapshot_counts(dsn: str, databases: tuple[str, ...] | list[str]) -> tuple[int, dict[str, int]]:
    """(next xid seen before counting, {"db:schema.table": rows}). Each database is counted in
    a REPEATABLE READ transaction, so its counts are one consistent moment."""
    first_xid = 0
    counts: dict[str, int] = {}
    for db in databases:
        with connect(make_dsn(dsn, dbname=db), autocommit=False) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            row = conn.execute("select pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
            if not first_xid and row:
                first_xid = int(row[0])
            tables = [r[0] for r in conn.execute(ROW_COUNTS_SQL).fetchall()]
            for table in tables:
                schema, _, name = table.partition(".")
                query = sql.SQL("select count(*) from {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(name)
                )
                result = conn.execute(query).fetchone()
                counts[f"{db}:{table}"] = int(result[0]) if result else 0
            conn.rollback()
    return first_xid, counts
