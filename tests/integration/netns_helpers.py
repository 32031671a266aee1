"""Hosts in network namespaces for the failover tests: a switch namespace with a bridge, one
namespace per PostgreSQL host and one client namespace (drkit, pgbouncer); addresses in
10.200.0.0/24 between these namespaces only (nothing is routed anywhere else).
Also: a replicated PostgreSQL pair, pgbouncer in front of it, a continuous writer."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import yaml

from drkit.adapters.postgres.recovery_conf import archive_command, quote
from drkit.domain.stack import RuntimeSpec
from drkit.infra.ownership import chown_tree
from drkit.infra.wait import wait_for
from drkit.runtimes.local_postgres import LocalPostgres
from drkit.sandbox.postgres import default_bin_dir
from tests.conftest import CliResult

HOSTS = {"p1": "10.200.0.1", "p2": "10.200.0.2", "c": "10.200.0.3"}
PORTS = {"p1": 5441, "p2": 5442}
REPL_PW = "s3cret:repl\\pw"
HOOK = (
    "import os, sys; "
    "open(sys.argv[1], 'w').write(os.environ['DRKIT_PRIMARY_NAME'] + ' ' + os.environ['DRKIT_PRIMARY_HOST'])"
)


def ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def drkit_argv_in(ns: str, config: Path, args: tuple[str, ...]) -> list[str]:
    """`drkit --config CONFIG ARGS` run inside namespace `ns` (the test's client host)."""
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "drkit", "--config", str(config), *args]


def drkit_in(ns: str, config: Path, args: tuple[str, ...], env: dict[str, str], timeout: float) -> CliResult:
    proc = subprocess.run(
        drkit_argv_in(ns, config, args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **env},
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Net:
    """A switch namespace with a bridge and one namespace per host (name -> address)."""

    prefix: str
    hosts: dict[str, str] = field(default_factory=lambda: dict(HOSTS))
    created: list[str] = field(default_factory=list)

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def up(self) -> None:
        sw = self.ns("sw")
        for name in ("sw", *self.hosts):
            ip("netns", "add", self.ns(name))
            self.created.append(self.ns(name))
            ip("link", "set", "lo", "up", ns=self.ns(name))
        ip("link", "add", "br0", "type", "bridge", ns=sw)
        ip("link", "set", "br0", "up", ns=sw)
        for host, address in self.hosts.items():
            ip(
                "link",
                "add",
                "eth0",
                "netns",
                self.ns(host),
                "type",
                "veth",
                "peer",
                "name",
                f"to-{host}",
                "netns",
                sw,
            )
            ip("link", "set", f"to-{host}", "master", "br0", ns=sw)
            ip("link", "set", f"to-{host}", "up", ns=sw)
            ip("addr", "add", f"{address}/24", "dev", "eth0", ns=self.ns(host))
            ip("link", "set", "eth0", "up", ns=self.ns(host))

    def link(self, host: str, state: str) -> None:
        """Cut (down) or restore (up) a host's link, on the switch side and its own."""
        ip("link", "set", f"to-{host}", state, ns=self.ns("sw"))
        ip("link", "set", "eth0", state, ns=self.ns(host))

    def throttle(self, host: str, rate: str) -> None:
        """Slow what the switch sends to `host` to `rate` (tc tbf; queued at most 200 ms, so
        small requests still get through while a bulk stream backs off)."""
        tc = ["tc", "qdisc", "replace", "dev", f"to-{host}", "root", "tbf"]
        subprocess.run(
            ["ip", "netns", "exec", self.ns("sw"), *tc, "rate", rate, "burst", "4kb", "latency", "200ms"],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def unthrottle(self, host: str) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.ns("sw"), "tc", "qdisc", "del", "dev", f"to-{host}", "root"],
            capture_output=True,
            timeout=30,
            check=False,
        )

    def answers(self, client: str, address: str, port: int) -> bool:
        """Whether `address:port` accepts a TCP connection from host `client`'s namespace."""
        probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1).close()"
        argv = ["ip", "netns", "exec", self.ns(client), sys.executable, "-c", probe]
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0

    def down(self) -> None:
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


@dataclass
class Pair:
    """A primary (p1, the service `postgres`) and a standby (pg2) in their namespaces,
    pgbouncer (client namespace) in front, the stack.yaml that names them."""

    root: Path
    net: Net
    config: Path
    bin_dir: str
    pgbouncer: subprocess.Popen[bytes] | None = None

    def sock(self, host: str, db: str = "nchat") -> str:
        return f"host={self.root / 'sock'} port={PORTS[host]} user=postgres dbname={db} connect_timeout=3"

    @property
    def pooled(self) -> str:
        return f"host={self.root / 'pgb'} port=6432 user=postgres dbname=nchat connect_timeout=3"

    def data_dir(self, host: str) -> Path:
        return self.root / host / "data"

    def runtime(self, host: str) -> LocalPostgres:
        return LocalPostgres(self.spec(host))

    def spec(self, host: str) -> RuntimeSpec:
        return RuntimeSpec(
            type="local",
            data_dir=str(self.data_dir(host)),
            bin_dir=self.bin_dir,
            port=PORTS[host],
            os_user="postgres",
            log_file=str(self.root / f"{host}.log"),
            exec_prefix=("ip", "netns", "exec", self.net.ns(host)),
        )

    def drkit(self, *args: str, timeout: float = 180) -> CliResult:
        return drkit_in(self.net.ns("c"), self.config, args, {"DRKIT_TEST_REPL_PW": REPL_PW}, timeout)

    def popen_drkit(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        argv = drkit_argv_in(self.net.ns("c"), self.config, args)
        env = {**os.environ, "DRKIT_TEST_REPL_PW": REPL_PW, "COLUMNS": "200", **(env or {})}
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def query(self, host: str, sql: str) -> Any:
        with psycopg.connect(self.sock(host), autocommit=True) as conn:
            cur = conn.execute(sql)
            row = cur.fetchone() if cur.description else None
            return row[0] if row else None

    def rows(self, host: str, sql: str) -> list[Any]:
        with psycopg.connect(self.sock(host), autocommit=True) as conn:
            return [r[0] for r in conn.execute(sql).fetchall()]

    def stop_all(self) -> None:
        if self.pgbouncer is not None:
            self.pgbouncer.terminate()
            try:
                self.pgbouncer.wait(10)
            except subprocess.TimeoutExpired:
                self.pgbouncer.kill()
        for host in PORTS:
            if (self.data_dir(host) / "postmaster.pid").exists():
                subprocess.run(
                    [
                        "runuser",
                        "-u",
                        "postgres",
                        "--",
                        f"{self.bin_dir}/pg_ctl",
                        "stop",
                        "-D",
                        str(self.data_dir(host)),
                        "-m",
                        "immediate",
                        "-w",
                    ],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )


PRIMARY_CONF = """
listen_addresses = '*'
unix_socket_directories = '{sock}'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '64MB'
wal_sender_timeout = '3s'
wal_receiver_timeout = '60s'
shared_buffers = '32MB'
max_connections = 40
fsync = on
"""
HBA = """local all all trust
host all all 10.200.0.0/24 trust
host replication replicator 10.200.0.0/24 scram-sha-256
"""


def make_pair(
    root: Path,
    net: Net,
    *,
    rpo: str = "5s",
    window: str = "3s",
    synchronous: bool = False,
    checksums: bool = True,
) -> Pair:
    """initdb and start the primary (p1) in its namespace, write stack.yaml, start pgbouncer
    in the client namespace; the standby is built by `drkit replica init pg2`."""
    root.mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(root.parent, 0o755)
    for sub in ("sock", "pgb", "p1", "p2", "repo", "state"):
        (root / sub).mkdir()
    bin_dir = default_bin_dir()
    pair = Pair(root, net, root / "stack.yaml", bin_dir)
    chown_tree(root, "postgres")
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            f"{bin_dir}/initdb",
            "-D",
            str(pair.data_dir("p1")),
            "-U",
            "postgres",
            *(["--data-checksums"] if checksums else []),
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with open(pair.data_dir("p1") / "postgresql.conf", "a") as conf:
        conf.write(PRIMARY_CONF.format(sock=root / "sock"))
        # archiving into drkit's repository, as a deployment has it: the standby's
        # restore_command fallback reads that archive (and an empty one stops a fetch)
        push = archive_command([sys.executable, "-m", "drkit"], str(pair.config), "postgres")
        conf.write(f"archive_mode = on\narchive_command = {quote(push)}\n")
    (pair.data_dir("p1") / "pg_hba.conf").write_text(HBA)
    pair.runtime("p1").start()
    with psycopg.connect(pair.sock("p1", "postgres"), autocommit=True) as conn:
        conn.execute("create database nchat")
    with psycopg.connect(pair.sock("p1"), autocommit=True) as conn:
        conn.execute("create table w (n int primary key, at timestamptz not null default clock_timestamp())")
    stack = _stack(pair, rpo, window)
    stack["services"]["postgres"]["replication"]["standbys"]["pg2"]["synchronous"] = synchronous
    pair.config.write_text(yaml.safe_dump(stack, sort_keys=False))
    _pgbouncer(pair)
    chown_tree(root, "postgres")
    return pair


def _member_runtime(pair: Pair, host: str) -> dict[str, Any]:
    s = pair.spec(host)
    return {
        "type": "local",
        "data_dir": s.data_dir,
        "bin_dir": s.bin_dir,
        "port": s.port,
        "os_user": s.os_user,
        "log_file": s.log_file,
        "exec_prefix": list(s.exec_prefix),
    }


def _stack(pair: Pair, rpo: str, window: str) -> dict[str, Any]:
    return {
        "version": 1,
        "stack": "fo",
        "state_dir": str(pair.root / "state"),
        "repositories": {"local": {"type": "fs", "path": str(pair.root / "repo")}},
        "services": {
            "postgres": {
                "kind": "postgres",
                "dsn": f"host={HOSTS['p1']} port={PORTS['p1']} user=postgres dbname=nchat",
                "rto": "60s",
                "rpo": rpo,
                "runtime": _member_runtime(pair, "p1"),
                "replication": {
                    "password": "env:DRKIT_TEST_REPL_PW",
                    "standbys": {
                        "pg2": {
                            "dsn": f"host={HOSTS['p2']} port={PORTS['p2']} user=postgres dbname=nchat",
                            "runtime": _member_runtime(pair, "p2"),
                        }
                    },
                    "failover": {
                        "probes": 3,
                        "window": window,
                        "probe_timeout": "1s",
                        "repoint": [
                            {
                                "type": "pgbouncer",
                                "path": str(pair.root / "pgbouncer.ini"),
                                "admin_dsn": f"host={pair.root / 'pgb'} port=6432 user=postgres"
                                " dbname=pgbouncer",
                                "databases": ["nchat"],
                            },
                            {"type": "env_file", "path": str(pair.root / "app.env"), "key": "POSTGRES_HOST"},
                            {
                                "type": "hook",
                                "command": [sys.executable, "-c", HOOK, str(pair.root / "hook.out")],
                            },
                        ],
                    },
                },
            }
        },
    }


def _pgbouncer(pair: Pair) -> None:
    ini = pair.root / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"nchat = host={HOSTS['p1']} port={PORTS['p1']} dbname=nchat user=postgres\n"
        "[pgbouncer]\n"
        "listen_addr =\n"
        f"unix_socket_dir = {pair.root / 'pgb'}\n"
        "listen_port = 6432\n"
        "auth_type = trust\n"
        f"auth_file = {pair.root / 'userlist.txt'}\n"
        "admin_users = postgres\n"
        "pool_mode = transaction\n"
        "server_connect_timeout = 2\n"
        "server_login_retry = 1\n"
        f"logfile = {pair.root / 'pgbouncer.log'}\n"
    )
    (pair.root / "userlist.txt").write_text('"postgres" ""\n')
    chown_tree(pair.root, "postgres")
    pair.pgbouncer = subprocess.Popen(
        ["ip", "netns", "exec", pair.net.ns("c"), "runuser", "-u", "postgres", "--", "pgbouncer", str(ini)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for((pair.root / "pgb" / ".s.PGSQL.6432").exists, timeout=20, what="pgbouncer's socket")


class Ack(NamedTuple):
    n: int
    at: float  # time.time() when the acknowledgement came (the client's clock)
    server: str  # the address of the server that acknowledged it
    inserted_at: datetime  # the server's clock_timestamp() in the insert: before its commit


class Writer(threading.Thread):
    """Inserts rows through pgbouncer until stopped, the deadline or `limit` rows; counts the
    commits acknowledged (which server, when, and the server's time inside each)."""

    def __init__(self, dsn: str, *, deadline: float = 180, limit: int = 50000) -> None:
        super().__init__(daemon=True)
        self.dsn, self.deadline, self.limit = dsn, time.monotonic() + deadline, limit
        self.acked: list[Ack] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        conn: psycopg.Connection[Any] | None = None
        sql = "insert into w (n) values (%s) returning host(inet_server_addr()), at"
        while not self.halt.is_set() and time.monotonic() < self.deadline and n < self.limit:
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None)
                row = conn.execute(sql, (n + 1,)).fetchone()
                n += 1
                if row is not None:
                    self.acked.append(Ack(n, time.time(), str(row[0]), row[1]))
            except psycopg.errors.UniqueViolation:
                n += 1  # that row committed, its acknowledgement was lost: not counted
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                self.halt.wait(0.05)  # pacing of retries, not a wait for a condition
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(30)

    def first_ack_on(self, server: str) -> float | None:
        """When the first commit acknowledged by `server` (an address) came."""
        return next((a.at for a in self.acked if a.server == server), None)

    def missing_on(self, present: set[int], server: str) -> list[Ack]:
        """The commits `server` acknowledged whose rows are not in `present`."""
        return [a for a in self.acked if a.server == server and a.n not in present]


def os_user_exists() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True
