"""Data checks on PostgreSQL: one-number queries and the built-in checks.

Built-ins return a Finding: how many problems, and what they are (named, for the report).
`pg_amcheck` verifies every B-tree index with the real tool; the others read the catalog.
A check that cannot run raises; the integrity engine turns that into a failed result.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from drkit.adapters.postgres.client import connect, make_dsn, service_dsn, tool_login, without_password
from drkit.domain.errors import OperationError, ToolError, UsageError
from drkit.domain.stack import Service
from drkit.infra.proc import find_tool, run

STATEMENT_TIMEOUT = 300.0
AMCHECK_TIMEOUT = 1800.0
_CALL = re.compile(r"^\s*([a-z_]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_AMCHECK_HEADER = re.compile(r'^(btree index|heap table|toast table) "([^"]+)"')


@dataclass(frozen=True)
class BuiltinCall:
    """`name` or `name(arg, arg)` as written in stack.yaml's `builtin:`."""

    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    count: int
    items: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Target:
    """Where a check runs: a DSN without the password, and the password apart."""

    dsn: str
    password: str | None
    bin_dir: str | None

    @classmethod
    def of(cls, service: Service, database: str | None) -> Target:
        if not service.dsn:
            raise UsageError(f"service {service.name} has no dsn: data checks need PostgreSQL")
        # service_dsn: dialed as everywhere else (a compose container's address)
        dsn = without_password(service_dsn(service, dbname=database))
        return cls(dsn, service.password, service.runtime.bin_dir)

    @property
    def dsn_with_password(self) -> str:
        return make_dsn(self.dsn, password=self.password)


def parse_builtin(text: str) -> BuiltinCall:
    match = _CALL.match(text)
    if not match:
        raise UsageError(f"bad builtin {text!r}: write a name, or name(arg, arg)")
    args = tuple(a.strip() for a in (match.group(2) or "").split(",") if a.strip())
    return BuiltinCall(match.group(1), args)


@contextmanager
def _session(target: Target) -> Iterator[psycopg.Connection[Any]]:
    with connect(target.dsn_with_password) as conn:
        conn.execute(
            "select set_config('statement_timeout', %s, false)", (f"{int(STATEMENT_TIMEOUT * 1000)}",)
        )
        yield conn


def query_number(target: Target, sql: str) -> float:
    """Run a check's query; it must return exactly one number."""
    with _session(target) as conn:
        cur = conn.execute(sql)
        rows = cur.fetchall() if cur.description is not None else []
    if len(rows) != 1 or len(rows[0]) != 1:
        raise OperationError(f"the query must return one row of one column, got {len(rows)} row(s)")
    value = rows[0][0]
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise OperationError(f"the query must return a number, got {value!r}")
    return float(value)


def run_builtin(call: BuiltinCall, target: Target) -> Finding:
    builtin = BUILTINS.get(call.name)
    if builtin is None:
        raise UsageError(f"unknown builtin {call.name!r} (known: {', '.join(sorted(BUILTINS))})")
    return builtin(call, target)


def _rows(target: Target, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with _session(target) as conn:
        return list(conn.execute(sql, params).fetchall())


def amcheck_indexes(call: BuiltinCall, target: Target) -> Finding:
    """pg_amcheck on every B-tree index of the database; each corrupt index is one finding."""
    tool = find_tool("pg_amcheck", target.bin_dir or _newest_bin_dir("pg_amcheck"))
    with tool_login(target.dsn_with_password) as login:  # no password on its command line
        args = [tool, "--no-password", "--index=*", login.dsn]
        result = run(args, timeout=AMCHECK_TIMEOUT, check=False, env=login.env)
    if result.returncode not in (0, 2):
        raise ToolError(_amcheck_trouble(result.stderr or result.stdout))
    items = parse_amcheck_report(result.stdout)
    if result.returncode == 2 and not items:
        items = (" ".join(result.stdout.split())[:200] or "corruption reported",)
    return Finding(len(items), items)


def _amcheck_trouble(text: str) -> str:
    lines = [ln.removeprefix("pg_amcheck: ") for ln in text.splitlines() if ln.strip()]
    message = "; ".join(lines) or "pg_amcheck failed"
    if "amcheck is not installed" in message:
        message += " (run `create extension amcheck` in the database as a superuser)"
    return message


def parse_amcheck_report(text: str) -> tuple[str, ...]:
    """One item per corrupt relation: its header line and the first line of what was found."""
    items: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _AMCHECK_HEADER.match(line)
        if match:
            first = lines[i + 1].strip() if i + 1 < len(lines) else ""
            items.append(f"{match.group(1)} {match.group(2)}: {first}".rstrip(": "))
    return tuple(items)


def _newest_bin_dir(tool: str) -> str | None:
    """Debian keeps server tools in /usr/lib/postgresql/<major>/bin, off PATH."""
    found = glob.glob(f"/usr/lib/postgresql/*/bin/{tool}")
    found.sort(key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def checksum_failures(call: BuiltinCall, target: Target) -> Finding:
    """Pages that failed checksum verification since the statistics were last reset."""
    enabled = _rows(target, "select current_setting('data_checksums')")[0][0] == "on"
    if not enabled:
        return Finding(
            0,
            note="data checksums are off in this cluster: nothing to count "
            "(pg_checksums --enable turns them on, server stopped)",
        )
    rows = _rows(target, CHECKSUM_SQL)
    return Finding(
        sum(int(r[1]) for r in rows), tuple(f"{r[0]}: {r[1]} failure(s), last at {r[2]}" for r in rows)
    )


CHECKSUM_SQL = """
select coalesce(datname, '(shared catalogs)'), checksum_failures, checksum_last_failure
from pg_stat_database where coalesce(checksum_failures, 0) > 0 order by 1
"""

UNVALIDATED_SQL = """
select coalesce(nullif(c.conrelid, 0)::regclass::text, c.contypid::regtype::text), c.conname
from pg_constraint c join pg_namespace n on n.oid = c.connamespace
where not c.convalidated and n.nspname not in ('pg_catalog', 'information_schema')
order by 1, 2
"""

UNINDEXED_FK_SQL = """
select c.conrelid::regclass::text, c.conname,
       (select string_agg(a.attname, ', ' order by k.ord)
          from unnest(c.conkey) with ordinality k(attnum, ord)
          join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum)
from pg_constraint c join pg_namespace n on n.oid = c.connamespace
where c.contype = 'f' and n.nspname not in ('pg_catalog', 'information_schema')
  and not exists (
    select 1 from pg_index i
    where i.indrelid = c.conrelid and i.indpred is null and i.indisvalid
      and (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey)
order by 1, 2
"""

EXPECTED_INDEXES_SQL = """
select e.name, c.oid is not null, coalesce(i.indisvalid and i.indisready, false)
from unnest(%s::text[]) with ordinality e(name, ord)
left join pg_class c on c.oid = to_regclass(e.name) and c.relkind in ('i', 'I')
left join pg_index i on i.indexrelid = c.oid
order by e.ord
"""

INVALID_INDEXES_SQL = """
select i.indexrelid::regclass::text, i.indrelid::regclass::text
from pg_index i where not (i.indisvalid and i.indisready and i.indislive) order by 1
"""


def unvalidated_constraints(call: BuiltinCall, target: Target) -> Finding:
    """Constraints added NOT VALID and never validated: existing rows were not checked."""
    rows = _rows(target, UNVALIDATED_SQL)
    return Finding(len(rows), tuple(f"{r[0]}: {r[1]}" for r in rows))


def unindexed_foreign_keys(call: BuiltinCall, target: Target) -> Finding:
    """Foreign keys whose columns lead no index: deletes on the parent scan the whole child."""
    rows = _rows(target, UNINDEXED_FK_SQL)
    return Finding(len(rows), tuple(f"{r[0]}.{r[1]} ({r[2]})" for r in rows))


def expected_indexes(call: BuiltinCall, target: Target) -> Finding:
    """Each named index (schema.name) exists and is valid."""
    if not call.args:
        raise UsageError("expected_indexes needs the index names: expected_indexes(public.a_pkey, ...)")
    rows = _rows(target, EXPECTED_INDEXES_SQL, (list(call.args),))
    bad = tuple(f"{r[0]}: {'invalid' if r[1] else 'missing'}" for r in rows if not r[2])
    return Finding(len(bad), bad, note=f"{len(call.args) - len(bad)} of {len(call.args)} present")


def invalid_indexes(call: BuiltinCall, target: Target) -> Finding:
    """Indexes left invalid (a failed CREATE INDEX CONCURRENTLY): not used, maybe not enforced."""
    rows = _rows(target, INVALID_INDEXES_SQL)
    return Finding(len(rows), tuple(f"{r[0]} on {r[1]}" for r in rows))


BUILTINS: dict[str, Callable[[BuiltinCall, Target], Finding]] = {
    "pg_amcheck": amcheck_indexes,
    "checksum_failures": checksum_failures,
    "unvalidated_constraints": unvalidated_constraints,
    "unindexed_foreign_keys": unindexed_foreign_keys,
    "expected_indexes": expected_indexes,
    "invalid_indexes": invalid_indexes,
}
