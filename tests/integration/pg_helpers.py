"""Helpers for PostgreSQL integration tests: waiting on the archiver, restore targets."""

from __future__ import annotations

from pathlib import Path

from drkit.adapters.postgres.client import connect
from drkit.domain.errors import OperationError
from drkit.infra.ownership import chown_tree
from drkit.infra.wait import wait_for


def switch_and_wait_archived(dsn: str, timeout: float = 60) -> str:
    """Close the current WAL segment and wait until the archiver has stored it."""
    with connect(dsn) as conn:
        row = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        segment = str(row[0])

        def archived() -> bool:
            r = conn.execute("select last_archived_wal from pg_stat_archiver").fetchone()
            return bool(r and r[0] and r[0] >= segment)

        wait_for(archived, timeout=timeout, what=f"{segment} to be archived", retry_on=(OperationError,))
    return segment


def restore_dir(sandbox_dir: Path, name: str, os_user: str | None) -> Path:
    """A path for `restore --to` that the database user can reach (its parent exists)."""
    parent = sandbox_dir / "restores"
    parent.mkdir(exist_ok=True)
    chown_tree(parent, os_user)
    return parent / name


def query_dsn(port: int, dbname: str = "nchat") -> str:
    return f"host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=10"


def stop_restored(data_dir: Path, os_user: str | None, bin_dir: str | None = None) -> None:
    """Stop a restored copy with its major's pg_ctl (`bin_dir`; default: the newest Debian one)."""
    from drkit.domain.stack import RuntimeSpec
    from drkit.runtimes.local_postgres import LocalPostgres
    from drkit.sandbox.postgres import default_bin_dir

    spec = RuntimeSpec(
        type="local", data_dir=str(data_dir), bin_dir=bin_dir or default_bin_dir(), os_user=os_user
    )
    LocalPostgres(spec).stop()
