"""A real PostgreSQL cluster for the sandbox: initdb with checksums, WAL capture configured.

PostgreSQL refuses to run as root; when drkit is root the cluster belongs to `os_user`
(Debian's `postgres`), and so does the whole sandbox directory, since that user runs
`drkit wal-push` and `drkit wal-fetch` against the repository inside it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from drkit.adapters.postgres.recovery_conf import pg_shell_command, quote
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.ownership import chown_tree, traversable_by
from drkit.infra.proc import find_tool, run
from drkit.sandbox.parts import PartContext, ServiceEntry


def default_bin_dir() -> str:
    """The newest PostgreSQL server binaries installed (Debian layout), else PATH."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    for candidate in reversed(dirs):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return candidate
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise OperationError(
        "PostgreSQL server binaries (initdb) not found",
        hint="install them: apt-get install postgresql-15 (make deps does it)",
    )


SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")


def server_bin_dir(requested: str | None, os_user: str | None) -> str:
    """The server binaries the sandbox runs: `requested` (any major: Debian's, a wheel's, a
    build's) or the newest Debian ones. The database user must be able to execute them."""
    bin_dir = os.path.abspath(requested) if requested else default_bin_dir()
    for tool in SERVER_TOOLS:
        if not os.access(os.path.join(bin_dir, tool), os.X_OK):
            raise UsageError(f"{bin_dir} has no executable {tool}: not a PostgreSQL server bin_dir")
    blocked = traversable_by(Path(bin_dir) / "postgres", os_user)
    if blocked is not None:
        raise UsageError(
            f"the database user {os_user} cannot execute {bin_dir}/postgres ({blocked} is closed to it)",
            hint="put the PostgreSQL binaries (or the venv holding them) somewhere world-readable",
        )
    return bin_dir


def server_major(bin_dir: str) -> int:
    """18 for `postgres (PostgreSQL) 18.6`."""
    from drkit.adapters.postgres.tools import major, tool_version

    return major(tool_version("postgres", bin_dir))


def default_os_user() -> str | None:
    """None when we are not root; else the account that will own the sandbox."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise OperationError("running as root and no 'postgres' user exists to run PostgreSQL")


@dataclass(frozen=True)
class ClusterSpec:
    data_dir: Path
    socket_dir: Path
    port: int
    bin_dir: str
    os_user: str | None
    archive_command: str | None
    extra: tuple[tuple[str, str], ...] = ()


def init_cluster(spec: ClusterSpec) -> None:
    """initdb with data checksums, trust auth on loopback, WAL ready for backups."""
    initdb = find_tool("initdb", spec.bin_dir)
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    spec.socket_dir.mkdir(parents=True, exist_ok=True)
    chown_tree(spec.data_dir.parent, spec.os_user)
    chown_tree(spec.socket_dir, spec.os_user)
    run(
        [
            initdb,
            "-D",
            str(spec.data_dir),
            "-U",
            "postgres",
            "--data-checksums",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        timeout=180,
        os_user=spec.os_user,
    )
    settings = [
        ("listen_addresses", "127.0.0.1"),
        ("port", str(spec.port)),
        ("unix_socket_directories", str(spec.socket_dir)),
        ("wal_level", "replica"),
        ("max_wal_senders", "10"),
        ("max_replication_slots", "10"),
        ("wal_keep_size", "256MB"),
        ("shared_buffers", "128MB"),
        ("max_connections", "50"),
        ("log_line_prefix", "%m [%p] "),
        ("archive_mode", "on" if spec.archive_command else "off"),
        *([("archive_command", spec.archive_command)] if spec.archive_command else []),
        ("archive_timeout", "60"),
        # 17+: the WAL summaries `drkit backup --type incremental` builds on.
        *([("summarize_wal", "on")] if _major(spec.data_dir) >= 17 else []),
        *spec.extra,
    ]
    with open(spec.data_dir / "postgresql.conf", "a") as conf:
        conf.write("\n# drkit sandbox\n")
        for key, value in settings:
            conf.write(f"{key} = {quote(value)}\n")
    hba = (
        "local all all trust\n"
        "local replication all trust\n"
        "host all all 127.0.0.1/32 trust\n"
        "host replication all 127.0.0.1/32 trust\n"
    )
    (spec.data_dir / "pg_hba.conf").write_text(hba)


def _major(data_dir: Path) -> int:
    try:
        return int((data_dir / "PG_VERSION").read_text().strip().split(".")[0])
    except (OSError, ValueError):
        return 0


def prepare(ctx: PartContext) -> ServiceEntry:
    """initdb, start, create and seed the nchat database (other parts seed from it)."""
    from drkit.adapters.postgres.client import execute
    from drkit.runtimes.local_postgres import LocalPostgres
    from drkit.sandbox.seed import create_schema, seed

    port = ctx.port()
    bin_dir = server_bin_dir(ctx.pg_bin_dir, ctx.os_user)
    base = ctx.service_dir("postgres")
    data_dir = base / "data"
    archive = None
    if ctx.wal_mode == "archive":
        archive = pg_shell_command([*drkit_command(), "--config", str(ctx.config_path), "wal-push"], "%p")
    init_cluster(ClusterSpec(data_dir, base, port, bin_dir, ctx.os_user, archive))
    log_file = str(ctx.logs / "postgres.log")
    runtime: dict[str, object] = {
        "type": "local",
        "data_dir": str(data_dir),
        "bin_dir": bin_dir,
        "port": port,
        "log_file": log_file,
    }
    if ctx.os_user:
        runtime["os_user"] = ctx.os_user
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=nchat"
    LocalPostgres(
        RuntimeSpec(
            type="local",
            data_dir=str(data_dir),
            bin_dir=bin_dir,
            port=port,
            os_user=ctx.os_user,
            log_file=log_file,
        )
    ).start()
    execute(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", "create database nchat")
    create_schema(dsn)
    seed(dsn, ctx.seed)
    config = {
        "kind": "postgres",
        "runtime": runtime,
        "dsn": dsn,
        "rto": "30m",
        "rpo": "5m",
        "priority": "critical",
        "backup": {"wal_mode": ctx.wal_mode, "databases": ["nchat"], "checkpoint": "fast"},
    }
    state = {"port": port, "data_dir": str(data_dir), "bin_dir": bin_dir, "dsn": dsn}
    return ServiceEntry("postgres", config, dsn, {**state, "major": server_major(bin_dir)})


def drkit_command() -> list[str]:
    """How the database user runs drkit (archive_command, restore_command)."""
    import sys

    return [sys.executable, "-m", "drkit"]
