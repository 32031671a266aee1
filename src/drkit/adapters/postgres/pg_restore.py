"""pg_restore and pg_dump of chosen tables as typed calls; the password goes to the tools
through a 0600 passfile (`tool_login`), never on a command line."""

from __future__ import annotations

from pathlib import Path

from drkit.adapters.postgres.client import tool_login
from drkit.infra.proc import find_tool, run

TIMEOUT = 6 * 3600.0


def restore_dump(dsn: str, dump: Path, bin_dir: str | None, *, single_transaction: bool = False) -> None:
    """The whole custom-format dump into the database of `dsn`; the first error stops it."""
    with tool_login(dsn) as login:
        args = [find_tool("pg_restore", bin_dir), "--exit-on-error", "--no-password", "--dbname", login.dsn]
        if single_transaction:
            args.append("--single-transaction")
        run([*args, str(dump)], timeout=TIMEOUT, env=login.env)


def dump_tables(dsn: str, tables: list[str], out: Path, bin_dir: str | None) -> None:
    """pg_dump -Fc of the named tables with what belongs to them (indexes, constraints,
    triggers): unlike pg_restore -t, which restores the bare table."""
    with tool_login(dsn) as login:
        args = [find_tool("pg_dump", bin_dir), "--format=custom", "--no-password", "--file", str(out)]
        for table in tables:
            args += ["--table", table]
        run([*args, "--dbname", login.dsn], timeout=TIMEOUT, env=login.env)
