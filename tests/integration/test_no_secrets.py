"""No password on a command line, in a tool's environment, or in what drkit prints.

A private sandbox gets a login role with REPLICATION whose password is required (scram on
loopback); a stack.yaml points at it with `password: env:...`. While `drkit wal-stream` and
while `drkit backup` run, every process's /proc/PID/cmdline and `ps -eo args` are read: the
password appears nowhere, and the backups succeed and WAL arrives all the same.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import conninfo

from drkit.adapters.postgres.client import connect, make_dsn, scalar
from drkit.domain.errors import OperationError
from drkit.infra.ports import free_port
from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle

ROLE = "drkit_guarded"
PASSWORD_VAR = "DRKIT_IT_GUARDED_PASSWORD"
TOOLS = ("pg_basebackup", "pg_dump", "pg_dumpall", "pg_receivewal")
SEGMENT = re.compile(r"^[0-9A-F]{24}(\.partial)?\.zst$")


@dataclass
class Guarded:
    box: SandboxHandle
    password: str
    config: Path
    repo: Path

    @property
    def env(self) -> dict[str, str]:
        return {PASSWORD_VAR: self.password}


@dataclass
class Seen:
    """What a watcher found in the process table: the tools it saw, and any leak."""

    tools: set[str] = field(default_factory=set)
    passfiles: set[str] = field(default_factory=set)
    leaks: list[str] = field(default_factory=list)


def processes() -> Iterator[tuple[int, int, str, bytes]]:
    """(pid, parent pid, command line, environment) of every process we can read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        yield int(entry.name), ppid, cmdline, environ


def look(password: str, seen: Seen, drkit_pid: int) -> None:
    """Every process is searched for the password; the tools that `drkit_pid` started are noted."""
    for pid, ppid, cmdline, environ in processes():
        if password in cmdline:
            seen.leaks.append(f"/proc/{pid}/cmdline: {cmdline}")
        tool = next((t for t in TOOLS if cmdline.split(" ", 1)[0].endswith("/" + t)), None)
        if tool and ppid == drkit_pid:
            seen.tools.add(tool)
            # The operator's own variable (`password: env:...`) is inherited like all of
            # drkit's environment, which is as readable as the tool's: anything else is a leak.
            handed = [v for v in environ.split(b"\0") if not v.startswith(f"{PASSWORD_VAR}=".encode())]
            if any(password.encode() in v for v in handed):
                seen.leaks.append(f"/proc/{pid}/environ of {tool}")
            found = re.search(rb"(?:^|\0)PGPASSFILE=([^\0]+)", environ)
            if found:
                seen.passfiles.add(found.group(1).decode())
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=30, check=True)
    seen.leaks += [f"ps: {line}" for line in ps.stdout.splitlines() if password in line]


@pytest.fixture
def guarded(private_sandbox: SandboxHandle, tmp_path: Path) -> Guarded:
    box = private_sandbox
    password = f"Pw-{secrets.token_hex(12)}"
    box.psql(f"create role {ROLE} login superuser replication password '{password}'")
    conf = box.box.state["services"]["postgres"]
    hba = Path(conf["data_dir"]) / "pg_hba.conf"
    required = (
        f"host all {ROLE} 127.0.0.1/32 scram-sha-256\nhost replication {ROLE} 127.0.0.1/32 scram-sha-256\n"
    )
    hba.write_text(required + hba.read_text())  # first match wins: the role needs its password
    box.psql("select pg_reload_conf()")
    plain = f"host=127.0.0.1 port={conf['port']} user={ROLE} dbname=nchat connect_timeout=5"

    def password_required() -> bool:
        try:
            with connect(plain):
                return False  # the reload has not been seen yet
        except OperationError as exc:
            return "password" in str(exc)

    wait_for(password_required, timeout=30, what="the role to need its password")
    assert scalar(make_dsn(plain, password=password), "select current_user") == ROLE

    config = yaml.safe_load(box.config_path.read_text())
    service = config["services"]["postgres"]
    params = conninfo.conninfo_to_dict(service["dsn"])
    service["dsn"] = conninfo.make_conninfo("", **{**params, "user": ROLE})
    service["password"] = f"env:{PASSWORD_VAR}"
    service["backup"]["slot"] = "guarded"
    repo = box.dir / "repo-guarded"
    config["repositories"]["local"]["path"] = str(repo)
    config["state_dir"] = str(box.dir / "state-guarded")
    path = box.dir / "guarded.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Guarded(box, password, path, repo)


def drkit_process(g: Guarded, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """drkit started in the background; its stdout in `log`, its stderr in `log`.err."""
    with open(log, "wb") as out, open(f"{log}.err", "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "drkit", "--config", str(g.config), *args],
            stdout=out,
            stderr=err,
            env={**os.environ, PASSWORD_VAR: g.password},
        )


def said(log: Path) -> str:
    return log.read_text() + Path(f"{log}.err").read_text()


def segments(repo: Path) -> set[str]:
    return {p.name for p in repo.rglob("*") if SEGMENT.match(p.name)}


def test_wal_stream_puts_no_password_on_a_command_line_and_wal_still_arrives(guarded: Guarded) -> None:
    g = guarded
    log = g.box.dir / "guarded-wal-stream.log"
    proc = drkit_process(g, "wal-stream", log=log)
    seen = Seen()
    try:

        def streaming() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"wal-stream exited: {said(log)}")
            # 'streaming': the receiver itself, not the short --create-slot call before it.
            sql = "select count(*) from pg_stat_replication where usename = %s and state = 'streaming'"
            return bool(g.box.psql(sql, (ROLE,)))

        wait_for(streaming, timeout=60, what="pg_receivewal to stream as the guarded role")
        look(g.password, seen, proc.pid)
        assert "pg_receivewal" in seen.tools
        assert len(seen.passfiles) == 1
        passfile = Path(next(iter(seen.passfiles)))
        assert passfile.stat().st_mode & 0o777 == 0o600, "the passfile lives as long as the receiver"
        assert passfile.parent.stat().st_mode & 0o777 == 0o700

        before = segments(g.repo)
        g.box.psql("create table guarded_probe as select generate_series(1, 1000) as id")
        g.box.psql("select pg_switch_wal()")
        wait_for(lambda: segments(g.repo) - before, timeout=60, what="a streamed segment in the archive")
        look(g.password, seen, proc.pid)  # and still nothing after it has been running a while
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert seen.leaks == []
    assert proc.returncode == 0, said(log)
    assert g.password not in said(log)
    assert not passfile.exists() and not passfile.parent.exists(), "the passfile goes with the receiver"


@pytest.mark.parametrize("kind", ["base", "logical"])
def test_backup_puts_no_password_on_a_command_line_and_succeeds(guarded: Guarded, kind: str) -> None:
    g = guarded
    lock = psycopg.connect(g.box.dsn) if kind == "logical" else None
    if lock is not None:
        # pg_dump waits for this lock while it is looked at: it cannot finish unseen.
        lock.execute("lock table nchat_messages in access exclusive mode")
    else:
        # Throttled so that pg_basebackup runs long enough to be looked at many times.
        config = yaml.safe_load(g.config.read_text())
        config["services"]["postgres"]["backup"]["max_rate"] = "8M"
        g.config.write_text(yaml.safe_dump(config, sort_keys=False))
    tool = "pg_basebackup" if kind == "base" else "pg_dump"
    log = g.box.dir / f"guarded-backup-{kind}.log"
    proc = drkit_process(g, "--output", "json", "backup", "--type", kind, log=log)
    seen = Seen()
    try:

        def tool_running() -> bool:
            look(g.password, seen, proc.pid)
            if proc.poll() is not None:
                raise AssertionError(f"backup ended before {tool} was seen: {said(log)}")
            return tool in seen.tools

        wait_for(tool_running, timeout=120, what=f"{tool} to run", interval=0.01, max_interval=0.05)
    finally:
        if lock is not None:
            lock.rollback()
            lock.close()
    while proc.poll() is None:
        look(g.password, seen, proc.pid)
    assert seen.leaks == []
    assert proc.returncode == 0, said(log)
    assert g.password not in said(log)
    assert seen.passfiles and not any(Path(p).exists() for p in seen.passfiles), "passfiles are removed"
    backup_id = str(json.loads(log.read_text())[0]["backup_id"])

    shown = run_drkit("--output", "json", "backups", "show", backup_id, config=g.config, env=g.env)
    assert shown.code == 0, shown.stderr
    assert backup_id in shown.stdout and g.password not in shown.stdout + shown.stderr
    for manifest in g.repo.rglob("manifest.json"):
        assert g.password not in manifest.read_text()
    status = run_drkit("--output", "json", "sandbox", "status", "--dir", str(g.box.dir))
    assert status.code == 0 and '"postgres"' in status.stdout
    assert g.password not in status.stdout + status.stderr


def test_connection_errors_do_not_show_the_password(guarded: Guarded) -> None:
    g = guarded
    config = yaml.safe_load(g.config.read_text())
    service = config["services"]["postgres"]
    params = conninfo.conninfo_to_dict(service["dsn"])
    variants = {
        "refused": conninfo.make_conninfo("", **{**params, "port": str(free_port())}),
        # libpq quotes the token it cannot decode: here, the password itself.
        "unparsable": f"postgresql://{ROLE}:bad%zz{g.password}@127.0.0.1:{params['port']}/nchat",
    }
    for name, dsn in variants.items():
        service["dsn"] = dsn
        path = g.box.dir / f"broken-{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        failed = run_drkit("--output", "json", "backup", config=path, env=g.env)
        assert failed.code != 0, name
        said = failed.stdout + failed.stderr
        assert g.password not in said, f"{name}: {said}"
        assert "PostgreSQL" in said, f"{name}: {said}"
        health = run_drkit("--output", "json", "health", config=path, env=g.env)
        assert g.password not in health.stdout + health.stderr, f"{name}: {health.stdout}"
