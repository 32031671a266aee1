"""Make a member a streaming standby the PostgreSQL 12+ way: pg_basebackup with a slot,
standby.signal, primary_conninfo whose password is in a passfile (never in
postgresql.auto.conf), primary_slot_name, restore_command from drkit's archive as a
fallback; pg_rewind for a former primary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from psycopg import conninfo, sql

from drkit.adapters.postgres.client import connect, describe, execute, make_dsn, scalar, tool_login
from drkit.adapters.postgres.recovery_conf import RECOVERY_KEYS, quote
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import Member
from drkit.engines.failover.cluster import Cluster, parse_lsn
from drkit.infra.aside import move_aside
from drkit.infra.atomic import write_atomic
from drkit.infra.ownership import chown_tree
from drkit.infra.proc import find_tool, last_line, run

STANDBY_KEYS = (
    frozenset({"primary_conninfo", "primary_slot_name", "synchronous_standby_names"}) | RECOVERY_KEYS
)


def data_dir(member: Member) -> Path:
    if member.runtime.type != "local" or not member.runtime.data_dir:
        raise UsageError(
            f"member {member.name}: drkit builds and rewinds standbys whose data directory it can "
            "reach (runtime type local with data_dir)"
        )
    return Path(member.runtime.data_dir)


def data_dir_here(member: Member) -> Path | None:
    """The member's data directory when it is on this host (a local or systemd runtime with
    data_dir, holding a cluster), else None."""
    if member.runtime.type not in ("local", "systemd") or not member.runtime.data_dir:
        return None
    path = Path(member.runtime.data_dir)
    return path if (path / "PG_VERSION").exists() else None


def passfile(member: Member) -> Path:
    """Where the member's replication password lives (0600, next to its data directory)."""
    return data_dir(member).parent / f"{member.name}.replication.pgpass"


def write_passfile(cluster: Cluster, member: Member) -> Path | None:
    password = cluster.replication.password
    if not password:
        return None
    path = passfile(member)
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    write_atomic(path, f"*:*:*:{cluster.replication.user}:{escaped}\n".encode(), mode=0o600)
    chown_tree(path, member.runtime.os_user)
    return path


def primary_conninfo(cluster: Cluster, member: Member, primary: Member) -> str:
    host, port = cluster.host_port(primary)
    params: dict[str, str | int | None] = {
        "host": host,
        "port": port,
        "user": cluster.replication.user,
        "application_name": member.name,
        "connect_timeout": 5,
    }
    if cluster.replication.password:
        params["passfile"] = str(passfile(member))
    return conninfo.make_conninfo("", **params)


def write_standby_settings(
    cluster: Cluster, member: Member, primary: Member, restore_command: str | None
) -> None:
    """standby.signal plus the streaming settings in postgresql.auto.conf (stale recovery and
    standby settings removed first; recovery.signal and recovery.conf removed)."""
    directory = data_dir(member)
    write_passfile(cluster, member)
    settings = {
        "primary_conninfo": primary_conninfo(cluster, member, primary),
        "primary_slot_name": member.slot,
        "recovery_target_timeline": "latest",
    }
    if restore_command:
        settings["restore_command"] = restore_command
    auto = directory / "postgresql.auto.conf"
    kept = [
        line
        for line in (auto.read_text().splitlines(keepends=True) if auto.exists() else [])
        if line.split("=", 1)[0].strip() not in STANDBY_KEYS
    ]
    lines = [f"\n# drkit: standby of {primary.name}\n"] + [f"{k} = {quote(v)}\n" for k, v in settings.items()]
    write_atomic(auto, "".join(kept + lines).encode(), mode=0o600)
    (directory / "standby.signal").touch()
    for stale in ("recovery.signal", "recovery.conf"):
        (directory / stale).unlink(missing_ok=True)
    for made in (auto, directory / "standby.signal"):
        chown_tree(made, member.runtime.os_user)


def ensure_slot(cluster: Cluster, primary: Member, slot: str) -> None:
    dsn = cluster.dsn(primary)
    exists = scalar(dsn, "select count(*) from pg_replication_slots where slot_name = %s", (slot,))
    if not exists:
        execute(dsn, "select pg_create_physical_replication_slot(%s)", (slot,))


def drop_slot(cluster: Cluster, primary: Member, slot: str) -> None:
    dsn = cluster.dsn(primary)
    active = scalar(dsn, "select active from pg_replication_slots where slot_name = %s", (slot,))
    if active:
        raise OperationError(f"replication slot {slot} on {primary.name} is in use by a running standby")
    if active is not None:
        execute(dsn, "select pg_drop_replication_slot(%s)", (slot,))


def ensure_replication_role(cluster: Cluster, primary: Member) -> None:
    """The replication role, created when missing (its password not logged)."""
    user = cluster.replication.user
    with connect(cluster.dsn(primary)) as conn:
        if conn.execute("select 1 from pg_roles where rolname = %s", (user,)).fetchone():
            return
        conn.execute("set log_statement = 'none'")
        stmt = sql.SQL("create role {} with login replication").format(sql.Identifier(user))
        if cluster.replication.password:
            stmt = sql.SQL("{} password {}").format(stmt, sql.Literal(cluster.replication.password))
        conn.execute(stmt)


def basebackup(cluster: Cluster, member: Member, primary: Member, *, replace_existing: bool) -> None:
    """pg_basebackup -C -S SLOT into the member's (empty) data directory, as its owner."""
    directory = data_dir(member)
    if directory.exists() and any(directory.iterdir()):
        if not replace_existing:
            raise UsageError(f"{directory} is not empty: pass --replace to rebuild {member.name}")
        if cluster.runtime(member).is_running():
            raise OperationError(f"{member.name} is running: stop it before rebuilding it")
        # Never deleted: a former primary's data may hold the only copy of commits no
        # other member has (infra/aside.py: a name never reused, the parent fsynced).
        move_aside(directory, "before-rebuild", now=datetime.now(UTC))
    directory.parent.mkdir(parents=True, exist_ok=True)
    chown_tree(directory.parent, member.runtime.os_user)
    drop_slot(cluster, primary, member.slot)
    host, port = cluster.host_port(primary)
    dsn = make_dsn(
        f"host={host} port={port} user={cluster.replication.user}",
        password=cluster.replication.password,
        application_name=f"drkit-basebackup-{member.name}",
    )
    tool = find_tool("pg_basebackup", member.runtime.bin_dir)
    with tool_login(dsn) as login:
        args = [tool, "-d", login.dsn, "-D", str(directory), "-X", "stream", "-c", "fast"]
        args += ["-C", "-S", member.slot, "--no-password"]
        proc = run(args, timeout=3600, check=False, env=login.env)
    if proc.returncode != 0:
        raise OperationError(f"pg_basebackup from {describe(dsn)} failed: {last_line(proc.stderr)}")
    chown_tree(directory, member.runtime.os_user)


def control_data(directory: Path, bin_dir: str | None) -> dict[str, str]:
    """pg_controldata's fields for a data directory ({} when it cannot be read)."""
    tool = find_tool("pg_controldata", bin_dir)
    proc = run([tool, "-D", str(directory)], timeout=30, check=False, env={"LC_ALL": "C"})
    if proc.returncode != 0:
        return {}
    return dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in proc.stdout.splitlines())
    )


def shutdown_lsn(member: Member, directory: Path | None = None) -> int | None:
    """Where the member's WAL ended, when it was shut down cleanly (its shutdown checkpoint)."""
    fields = control_data(directory or data_dir(member), member.runtime.bin_dir)
    if fields.get("Database cluster state") != "shut down":
        return None
    return parse_lsn(fields.get("Latest checkpoint's REDO location"))
