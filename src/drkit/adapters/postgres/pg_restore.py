"""pg_restore and pg_dump of chosen tables as typed calls; the password goes to the tools
through a 0600 passfile (`tool_login`), never on a command line.

`restore_dump` is the one definition of how drkit runs pg_restore: the real restores
(`restore postgres --database/--table`) and `verify --deep` of a logical backup both call
it, so a dump that verify passes is one the restore can load. `--exit-on-error`: the first
failed statement stops it (a dump that restores with errors is not restored).
"""

from __future__ import annotations

from pathlib import Path

from drkit.adapters.postgres.client import tool_login
from drkit.domain.errors import ToolError
from drkit.infra.proc import find_tool, last_line, run

TIMEOUT = 6 * 3600.0
RULES = ("--exit-on-error", "--no-password")  # every pg_restore drkit runs
STATEMENT_SHOWN = 240  # characters of the failed statement kept in the message


def restore_args(
    bin_dir: str | None, *, single_transaction: bool = False, no_tablespaces: bool = False
) -> list[str]:
    """pg_restore and its flags (without the connection and the dump)."""
    args = [find_tool("pg_restore", bin_dir), *RULES]
    if single_transaction:
        args.append("--single-transaction")
    if no_tablespaces:  # a scratch cluster has none of the source's tablespaces
        args.append("--no-tablespaces")
    return args


def restore_dump(
    dsn: str,
    dump: Path,
    bin_dir: str | None,
    *,
    single_transaction: bool = False,
    no_tablespaces: bool = False,
    timeout: float = TIMEOUT,
) -> None:
    """The whole custom-format dump into the database of `dsn`; the first error stops it and
    is raised as a ToolError with PostgreSQL's own message and the statement that failed."""
    args = restore_args(bin_dir, single_transaction=single_transaction, no_tablespaces=no_tablespaces)
    with tool_login(dsn) as login:
        done = run([*args, "--dbname", login.dsn, str(dump)], timeout=timeout, check=False, env=login.env)
    if done.returncode != 0:
        raise ToolError(f"pg_restore failed: {pg_restore_error(done.stderr)}")


def pg_restore_error(stderr: str) -> str:
    """The useful part of pg_restore's stderr: the server's ERROR (not only the statement, which
    pg_restore prints last), its CONTEXT, and the statement it was running, shortened.

    pg_restore: error: could not execute query: ERROR:  relation "t" does not exist
    CONTEXT:  SQL function "f" during inlining
    Command was: CREATE INDEX ... -> 'ERROR: relation "t" does not exist (SQL function "f"
    during inlining); the statement: CREATE INDEX ...'
    """
    lines = [ln.rstrip() for ln in stderr.splitlines()]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("pg_restore: error:")]
    if not starts:
        return last_line(stderr)
    block = lines[starts[-1] :]
    error = block[0].removeprefix("pg_restore: error:").strip()
    error = error.removeprefix("could not execute query:").strip()
    error = " ".join(error.split())  # "ERROR:  x" -> "ERROR: x"
    context = next((ln.split(":", 1)[1].strip() for ln in block if ln.startswith("CONTEXT:")), "")
    command = next((i for i, ln in enumerate(block) if ln.startswith("Command was:")), None)
    message = error + (f" ({context})" if context else "")
    if command is not None:
        statement = " ".join(" ".join(block[command:]).removeprefix("Command was:").split()).rstrip(";")
        if len(statement) > STATEMENT_SHOWN:
            statement = statement[: STATEMENT_SHOWN - 3] + "..."
        message += f"; the statement: {statement}"
    return message


def dump_tables(dsn: str, tables: list[str], out: Path, bin_dir: str | None) -> None:
    """pg_dump -Fc of the named tables with what belongs to them (indexes, constraints,
    triggers): unlike pg_restore -t, which restores the bare table."""
    with tool_login(dsn) as login:
        args = [find_tool("pg_dump", bin_dir), "--format=custom", "--no-password", "--file", str(out)]
        for table in tables:
            args += ["--table", table]
        run([*args, "--dbname", login.dsn], timeout=TIMEOUT, env=login.env)
