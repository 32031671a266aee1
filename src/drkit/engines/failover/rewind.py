"""Make a stopped member's history match the primary it will follow: nothing to do when it
stopped cleanly where the primary's timeline forked from it (a switchover), else pg_rewind.

pg_rewind needs data checksums or `wal_log_hints = on` on the member it rewinds (it checks
that before anything else, even when no rewind is needed); without them, or when it fails,
the way back is a fresh copy (`drkit replica rejoin NAME --rebuild`: pg_basebackup, the old
data directory moved aside). `prerequisites` says so ahead: `drkit check`, a switchover."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from drkit.adapters.postgres.client import execute, rows, scalar, tool_login
from drkit.domain.errors import DrkitError, OperationError
from drkit.domain.stack import Member
from drkit.domain.wal import parse_history
from drkit.engines.failover.cluster import Cluster, parse_lsn
from drkit.engines.failover.standby import control_data, data_dir
from drkit.engines.postgres.check import rewind_problem
from drkit.infra.ownership import chown_tree
from drkit.infra.proc import find_tool, run

REBUILD = "drkit replica rejoin {name} --rebuild"


def prerequisites(checksums: bool, wal_log_hints: bool, name: str) -> str | None:
    """Why pg_rewind cannot rewind a member with these settings, or None."""
    return rewind_problem(name, checksums, wal_log_hints)


def server_prerequisites(cluster: Cluster, member: Member) -> str | None:
    """`prerequisites` of a running member, asked of the server."""
    found = rows(
        cluster.dsn(member), "select current_setting('data_checksums'), current_setting('wal_log_hints')"
    )
    on = found[0] if found else ("off", "off")
    return prerequisites(on[0] == "on", on[1] == "on", member.name)


def rewind(cluster: Cluster, member: Member, source: Member) -> str:
    """Ready a stopped member to follow `source`; says what was done."""
    directory = data_dir(member)
    fields = control_data(directory, member.runtime.bin_dir)
    execute(cluster.dsn(source), "checkpoint")  # the promoted source's control file names its timeline
    if not _needs_rewind(cluster, source, fields):
        return f"no rewind required (it stopped cleanly where {source.name}'s timeline forked)"
    why = prerequisites(
        fields.get("Data page checksum version", "0") != "0",
        fields.get("wal_log_hints setting") == "on",
        member.name,
    )
    if why:
        raise OperationError(why)
    return _pg_rewind(cluster, member, source, directory)


def _needs_rewind(cluster: Cluster, source: Member, fields: dict[str, str]) -> bool:
    """False when the member shut down cleanly and its last record (the shutdown checkpoint)
    is where `source`'s timeline forked from it, or it is on `source`'s timeline; True when
    that cannot be told (pg_rewind decides)."""
    if fields.get("Database cluster state") != "shut down":
        return True
    checkpoint = parse_lsn(fields.get("Latest checkpoint location"))
    timeline = int(fields.get("Latest checkpoint's TimeLineID") or 0)
    try:
        current = int(scalar(cluster.dsn(source), "select timeline_id from pg_control_checkpoint()") or 0)
        if current == timeline:
            return False
        name = f"pg_wal/{current:08X}.history"
        history = parse_history(str(scalar(cluster.dsn(source), "select pg_read_file(%s)", (name,))))
    except (DrkitError, psycopg.Error, ValueError):  # unreadable history: let pg_rewind judge
        return True
    fork = next((s.switch_lsn.value for s in history if s.parent == timeline), None)
    return checkpoint is None or fork is None or fork <= checkpoint


def _pg_rewind(cluster: Cluster, member: Member, source: Member, directory: Path) -> str:
    """pg_rewind as the member's OS user. A fenced member's standby.signal is lifted for it
    (pg_rewind's single-user crash recovery refuses standby mode) and put back after."""
    signal = directory / "standby.signal"
    held = signal.exists()
    signal.unlink(missing_ok=True)
    tool = find_tool("pg_rewind", member.runtime.bin_dir)
    try:
        with _owned_login(cluster.dsn(source, dbname="postgres"), member.runtime.os_user) as (dsn, env):
            args = [tool, "-D", str(directory), f"--source-server={dsn}", "--no-sync"]
            proc = run(args, timeout=3600, check=False, env=env, os_user=member.runtime.os_user)
    finally:
        if held:
            signal.touch()
            chown_tree(signal, member.runtime.os_user)
    if proc.returncode != 0:
        raise OperationError(
            f"pg_rewind of {member.name} failed: {_reason(proc.stderr + proc.stdout)}; "
            f"`{REBUILD.format(name=member.name)}` makes it a fresh copy"
        )
    said = (proc.stdout + proc.stderr).lower()
    return "no rewind required" if "no rewind required" in said else "rewound (pg_rewind)"


def _reason(output: str) -> str:
    """pg_rewind's own error line (its last line is often a 'detail:' one)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln or "fatal:" in ln.lower()]
    return (errors or lines or ["no output"])[0]


@contextmanager
def _owned_login(dsn: str, os_user: str | None) -> Iterator[tuple[str, dict[str, str | None]]]:
    """A ToolLogin whose passfile the member's OS user can read (pg_rewind refuses root)."""
    with tool_login(dsn) as login:
        secret = login.env.get("PGPASSFILE")
        if secret:
            chown_tree(Path(secret).parent, os_user)
        yield login.dsn, dict(login.env)
