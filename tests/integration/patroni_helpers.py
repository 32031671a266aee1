"""A three-member Patroni cluster (Debian's patroni, etcd-server, PostgreSQL 15) in network
namespaces made here: a switch namespace with a bridge, one namespace per member (Patroni as
the postgres user, bootstrapping the cluster itself) and a client namespace (one etcd member,
drkit). Addresses in 10.200.0.0/24 between these namespaces only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drkit.infra.ownership import chown_tree
from drkit.infra.wait import wait_for
from tests.conftest import CliResult
from tests.integration.netns_helpers import Net, drkit_in

MEMBERS = {"m1": "10.200.0.11", "m2": "10.200.0.12", "m3": "10.200.0.13"}
CLIENT = "10.200.0.20"
HOSTS = {**MEMBERS, "c": CLIENT}
BIN_DIR = "/usr/lib/postgresql/15/bin"
PATRONI_AUTH = "drkit:patroni-api-pw"


def PNet(prefix: str) -> Net:
    """The Patroni test's hosts: three members and a client (etcd, drkit) on one switch."""
    return Net(prefix, hosts=dict(HOSTS))


def member_config(root: Path, name: str) -> dict[str, Any]:
    addr = MEMBERS[name]
    user, password = PATRONI_AUTH.split(":", 1)
    return {
        "scope": "drk",
        "name": name,
        "log": {"dir": str(root / name), "level": "INFO"},
        "restapi": {
            "listen": f"{addr}:8008",
            "connect_address": f"{addr}:8008",
            "authentication": {"username": user, "password": password},
        },
        "etcd3": {"hosts": f"{CLIENT}:2379"},
        "bootstrap": {
            "dcs": {
                "ttl": 10,
                "loop_wait": 1,
                "retry_timeout": 3,
                "maximum_lag_on_failover": 16 << 20,
                "postgresql": {
                    "use_pg_rewind": True,
                    "parameters": {
                        "wal_level": "replica",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "64MB",
                        "shared_buffers": "32MB",
                        "max_connections": 40,
                        "wal_log_hints": "on",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}],
        },
        "postgresql": {
            "listen": f"{addr}:5432",
            "connect_address": f"{addr}:5432",
            "data_dir": str(root / name / "data"),
            "bin_dir": BIN_DIR,
            "pgpass": str(root / name / "pgpass"),
            "authentication": {
                "superuser": {"username": "postgres", "password": "pg-super-pw"},
                "replication": {"username": "replicator", "password": "repl-pw"},
                "rewind": {"username": "postgres", "password": "pg-super-pw"},
            },
            "parameters": {"unix_socket_directories": str(root / name)},
            "pg_hba": [
                "local all all trust",
                "host all all 10.200.0.0/24 trust",
                "host replication replicator 10.200.0.0/24 trust",
            ],
        },
        "tags": {"nofailover": False, "noloadbalance": False},
    }


@dataclass
class PatroniCluster:
    root: Path
    net: Net
    config: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_etcd(self) -> None:
        data = self.root / "etcd"
        argv = [
            "ip", "netns", "exec", self.net.ns("c"), "etcd", "--name", "e1", "--data-dir", str(data),
            "--listen-client-urls", f"http://{CLIENT}:2379",
            "--advertise-client-urls", f"http://{CLIENT}:2379",
            "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "e1=http://127.0.0.1:2380",
        ]  # fmt: skip
        log = (self.root / "etcd.log").open("wb")
        self.procs["etcd"] = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        wait_for(
            lambda: self.http("c", f"http://{CLIENT}:2379/health"),
            timeout=30,
            what="etcd",
            retry_on=(OSError,),
        )

    def start(self, name: str) -> None:
        path = self.root / name / "patroni.yml"
        path.write_text(yaml.safe_dump(member_config(self.root, name)))
        chown_tree(self.root / name, "postgres")
        os.chmod(path, 0o600)
        argv = [
            "ip",
            "netns",
            "exec",
            self.net.ns(name),
            "runuser",
            "-u",
            "postgres",
            "--",
            "patroni",
            str(path),
        ]
        log = (self.root / f"{name}.out").open("wb")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)

    def http(self, ns_host: str, url: str, timeout: float = 3) -> Any:
        """GET from inside a namespace (the test process itself lives outside them)."""
        code = "import sys,urllib.request as u; print(u.urlopen(sys.argv[1], timeout=%s).read().decode())"
        argv = ["ip", "netns", "exec", self.net.ns(ns_host), sys.executable, "-c", code % timeout, url]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10, check=False)
        if proc.returncode != 0:
            raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
        return json.loads(proc.stdout) if proc.stdout.strip().startswith(("{", "[")) else proc.stdout

    def cluster(self) -> dict[str, Any]:
        for addr in MEMBERS.values():
            try:
                data = self.http("c", f"http://{addr}:8008/cluster")
            except OSError:
                continue
            if isinstance(data, dict):
                return data
        raise OSError("no Patroni member answers")

    def leader(self) -> str:
        leaders = [
            m["name"] for m in self.cluster()["members"] if m["role"] == "leader" and m["state"] == "running"
        ]
        if len(leaders) != 1:
            raise OSError(f"no single leader: {leaders}")
        return str(leaders[0])

    def healthy(self, count: int = 3) -> dict[str, Any]:
        c = self.cluster()
        ok = [m for m in c["members"] if m["state"] in ("running", "streaming")]
        if len(ok) < count or not any(m["role"] == "leader" for m in ok):
            raise OSError(f"not yet healthy: {c['members']}")
        lagging = [m for m in ok if m["role"] != "leader" and m.get("lag") not in (0, None)]
        if lagging:
            raise OSError(f"replicas lag: {lagging}")
        return c

    def drkit(self, *args: str, timeout: float = 180) -> CliResult:
        return drkit_in(
            self.net.ns("c"), self.config, args, {"DRKIT_TEST_PATRONI_AUTH": PATRONI_AUTH}, timeout
        )

    def psql(self, name: str, sql: str) -> str:
        argv = [
            "ip", "netns", "exec", self.net.ns(name), "runuser", "-u", "postgres", "--",
            f"{BIN_DIR}/psql", "-h", str(self.root / name), "-p", "5432", "-d", "postgres", "-Atc", sql,
        ]  # fmt: skip
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise OSError(proc.stderr.strip())
        return proc.stdout.strip()

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM if name == "etcd" else signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for name in MEMBERS:
            data = self.root / name / "data"
            if (data / "postmaster.pid").exists():
                stop = [f"{BIN_DIR}/pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w"]
                argv = ["runuser", "-u", "postgres", "--", *stop]
                subprocess.run(argv, capture_output=True, timeout=60, check=False)


def stack(root: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "stack": "pat",
        "state_dir": str(root / "state"),
        "repositories": {"local": {"type": "fs", "path": str(root / "repo")}},
        "services": {
            "postgres": {
                "kind": "postgres",
                "dsn": f"host={MEMBERS['m1']} port=5432 user=postgres dbname=postgres",
                "rto": "60s",
                "rpo": "10s",
                "replication": {
                    "patroni": {
                        "rest": [f"http://{a}:8008" for a in MEMBERS.values()],
                        "auth": "env:DRKIT_TEST_PATRONI_AUTH",
                        "timeout": "2s",
                        "wait": "60s",
                    },
                },
            }
        },
    }


def make_cluster(root: Path, net: Net) -> PatroniCluster:
    root.mkdir(parents=True)
    for d in (root, root.parent):
        os.chmod(d, 0o755)
    for name in MEMBERS:
        (root / name).mkdir()
    config = root / "stack.yaml"
    config.write_text(yaml.safe_dump(stack(root)))
    c = PatroniCluster(root, net, config)
    return c
