"""A throwaway PostgreSQL cluster to restore logical dumps into (never the live server).

initdb with the service's own binaries, owned by the database OS user, listening on
loopback only, no Unix socket, password authentication with a random password that only
this process knows (passed to clients in the environment, never on a command line), and
durability off (fsync, full page writes): the cluster is deleted after the check.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from psycopg import conninfo

from drkit.infra.ownership import chown_tree
from drkit.infra.proc import Completed, find_tool, run

SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "archive_mode": "off",
    "max_wal_size": "4GB",
    "max_connections": "20",
}


@dataclass(frozen=True)
class ScratchCluster:
    data_dir: Path
    port: int
    password: str
    bin_dir: str | None

    def dsn(self, dbname: str = "postgres") -> str:
        return conninfo.make_conninfo(
            "",
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=dbname,
            password=self.password,
            connect_timeout=10,
        )

    def client(self, tool: str, *args: str, timeout: float) -> Completed:
        """A client tool against this cluster as `postgres`, the password in PGPASSWORD."""
        argv = [find_tool(tool, self.bin_dir), "--host=127.0.0.1", f"--port={self.port}"]
        argv += ["--username=postgres", "--no-password", *args]
        return run(argv, timeout=timeout, check=False, env={"PGPASSWORD": self.password})


def init_scratch(data_dir: Path, *, port: int, bin_dir: str | None, os_user: str | None) -> ScratchCluster:
    """initdb into `data_dir` (its parent must exist and be owned by `os_user`)."""
    password = secrets.token_urlsafe(24)
    pwfile = data_dir.parent / "scratch-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        chown_tree(pwfile, os_user)
        run(
            [
                find_tool("initdb", bin_dir),
                *("-D", str(data_dir), "-U", "postgres", f"--pwfile={pwfile}"),
                *("--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
            ],
            timeout=300,
            os_user=os_user,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write("\n# drkit verify --deep: a throwaway cluster\n")
        for key, value in {**SETTINGS, "port": str(port)}.items():
            conf.write(f"{key} = '{value}'\n")
    (data_dir / "pg_hba.conf").write_text("host all postgres 127.0.0.1/32 scram-sha-256\n")
    return ScratchCluster(data_dir, port, password, bin_dir)
