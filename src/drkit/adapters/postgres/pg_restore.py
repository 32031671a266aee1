"""pg_restore and friends as typed calls, the password never on the command line: the
connection string on argv has no password; libpq reads it from PGPASSWORD."""

from __future__ import annotations

from pathlib import Path

from psycopg import conninfo

from drkit.infra.proc import find_tool, run

TIMEOUT = 6 * 3600.0


def _split(dsn: str) -> tuple[str, dict[str, str]]:
    """The conninfo without its password, and the environment that carries it."""
    params = conninfo.conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = {"PGPASSWORD": str(password)} if password else {}
    return conninfo.make_conninfo("", **params), env


def restore_dump(dsn: str, dump: Path, bin_dir: str | None, *, single_transaction: bool = False) -> None:
    """The whole custom-format dump into the database of `dsn`; the first error stops it."""
    target, env = _split(dsn)
    args = [find_tool("pg_restore", bin_dir), "--exit-on-error", "--no-password", "--dbname", target]
    if single_transaction:
        args.append("--single-transaction")
    run([*args, str(dump)], timeout=TIMEOUT, env=env)


def dump_tables(dsn: str, tables: list[str], out: Path, bin_dir: str | None) -> None:
    """pg_dump -Fc of the named tables with what belongs to them (indexes, constraints,
    triggers): unlike pg_restore -t, which restores the bare table."""
    source, env = _split(dsn)
    args = [find_tool("pg_dump", bin_dir), "--format=custom", "--no-password", "--file", str(out)]
    for table in tables:
        args += ["--table", table]
    run([*args, "--dbname", source], timeout=TIMEOUT, env=env)
