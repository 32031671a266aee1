"""Queries through psycopg, with a connect timeout and one clear error when the server is down;
connection strings for the client tools (the password handed over off the command line);
messages that name a connection without its password."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg import conninfo

from drkit.adapters.container import container_address, names_container
from drkit.domain.errors import ConfigError, OperationError
from drkit.domain.stack import Service
from drkit.infra.proc import Env, find_tool, secret_file

_URI_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]*)@")
_KV_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)")


def _params(dsn: str) -> dict[str, Any]:
    """The connection string's parameters; an unparsable one is a ConfigError that does not
    echo it (libpq quotes the offending token, which may be part of a password)."""
    try:
        return conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        reason = redact(first_line(exc), *passwords_in(dsn))
        reason = re.sub(r'"([^"]*)"', lambda m: m[0] if len(m[1]) < 2 else '"***"', reason)
        raise ConfigError(f"not a valid PostgreSQL connection string: {reason}") from None


def make_dsn(dsn: str, *, password: str | None = None, **overrides: Any) -> str:
    params = _params(dsn)
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
    params = _params(service.dsn)
    host = str(params.get("host") or "")
    dialed_elsewhere = "hostaddr" in params or overrides.get("host") or overrides.get("hostaddr")
    if not dialed_elsewhere and names_container(service.runtime, host):
        # `host=<project>_postgres`: a name only the compose network knows. Dial the
        # container's address instead (libpq's hostaddr; host stays for messages and TLS).
        overrides = {"hostaddr": container_address(service.runtime), **overrides}
    return make_dsn(service.dsn, password=service.password, **overrides)


def without_password(dsn: str) -> str:
    """The connection string with its password taken out (to keep the password apart)."""
    params = {k: v for k, v in _params(dsn).items() if k != "password" and v is not None}
    return conninfo.make_conninfo("", **params)


def describe(dsn: str) -> str:
    """host:port/dbname: how a connection string is named in messages (never its password)."""
    try:
        p = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(an unparsable connection string)"
    return f"{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"


def dsn_param(dsn: str, key: str) -> str:
    """One parameter of a connection string (host, user, ...), or "" when unset or unparsable."""
    try:
        return str(conninfo.conninfo_to_dict(dsn).get(key) or "")
    except psycopg.ProgrammingError:
        return ""


def passwords_in(dsn: str) -> list[str]:
    """Every password a connection string carries, also when libpq cannot parse it."""
    found = [m.group(1) for m in _URI_PASSWORD.finditer(dsn)]
    found += [_unquote_kv(m.group(1)) for m in _KV_PASSWORD.finditer(dsn)]
    found += [unquote(f) for f in found]
    with suppress(psycopg.ProgrammingError):
        found.append(str(conninfo.conninfo_to_dict(dsn).get("password") or ""))
    return [f for f in found if f]


def _unquote_kv(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every occurrence of each secret replaced by ***."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class ToolLogin:
    """How a PostgreSQL client tool (pg_dump, pg_basebackup, pg_receivewal) is given a
    connection: `dsn` for its command line, never with a password, and `env`, which hands
    the password over (PGPASSFILE naming a 0600 file; PGPASSWORD unset so it cannot win)."""

    dsn: str
    env: Env = field(default_factory=dict)
    in_container: bool = False  # the tool runs in the server's container: its own PATH finds it

    def tool(self, name: str, bin_dir: str | None) -> str:
        """The tool to run: by name in the container (the host needs no copy of it), else
        found in `bin_dir` or on PATH."""
        return name if self.in_container else find_tool(name, bin_dir)


@contextmanager
def tool_login(dsn: str) -> Iterator[ToolLogin]:
    """A ToolLogin for `dsn`, valid inside the `with` (the password file is removed after:
    a long-running tool keeps its `with` open while it runs)."""
    params = _params(dsn)
    password = str(params.pop("password", None) or "")
    if not password:
        yield ToolLogin(conninfo.make_conninfo("", **params))
        return
    params.pop("passfile", None)  # ours replaces it
    argv_dsn = conninfo.make_conninfo("", **params)
    if "\n" in password or "\r" in password:
        # A passfile holds one password per line: hand over such a password in the
        # environment instead (still never on a command line).
        yield ToolLogin(argv_dsn, {"PGPASSWORD": password, "PGPASSFILE": None})
        return
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    with secret_file(f"*:*:*:*:{escaped}\n".encode(), prefix="drkit-pgpass-") as path:
        yield ToolLogin(argv_dsn, {"PGPASSFILE": path, "PGPASSWORD": None})


@contextmanager
def connect(dsn: str, *, autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        reason = redact(first_line(exc), *passwords_in(dsn)) if str(exc).strip() else "connection refused"
        raise OperationError(f"cannot connect to PostgreSQL at {describe(dsn)}: {reason}") from exc
    except psycopg.ProgrammingError:
        _params(dsn)  # raises the ConfigError that says why, without the connection string
        raise
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


def archive_ready_count(dsn: str) -> int | None:
    """Completed WAL segments (and history/backup files) waiting for archive_command: the
    `.ready` files in pg_wal/archive_status. None when the server will not say (the function
    needs superuser or pg_monitor)."""
    try:
        with connect(dsn) as conn:
            row = conn.execute(
                "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'"
            ).fetchone()
            return int(row[0]) if row else 0
    except Exception:  # not knowing is not a failure
        return None


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
