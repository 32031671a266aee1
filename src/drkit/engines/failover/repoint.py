"""Tell clients where the primary now is: rewrite an env file and restart its dependents
in dependency order, repoint pgbouncer (rewrite its [databases] entries, RELOAD), an HAProxy
server (its runtime API), or run a hook command. Also pause and resume the writers."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from drkit.adapters.postgres.client import describe, first_line
from drkit.domain.errors import OperationError
from drkit.domain.stack import Repoint
from drkit.engines.core.workspace import Workspace
from drkit.engines.stack.graph import ServiceGraph
from drkit.infra.atomic import write_atomic
from drkit.infra.proc import last_line, run
from drkit.runtimes.factory import runtime_for


@contextmanager
def pgbouncer_admin(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """pgbouncer's admin console speaks the simple query protocol only."""
    try:
        conn = psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.ClientCursor)
    except psycopg.OperationalError as exc:
        raise OperationError(f"cannot reach pgbouncer at {describe(dsn)}: {first_line(exc)}") from exc
    try:
        yield conn
    finally:
        conn.close()


def _admin(dsn: str, *commands: str) -> None:
    with pgbouncer_admin(dsn) as conn:
        for command in commands:
            try:
                conn.execute(command)
            except psycopg.Error as exc:
                raise OperationError(f"pgbouncer {command}: {first_line(exc)}") from exc


def _pgbouncer_dbs(r: Repoint) -> list[str]:
    return list(r.databases) if r.databases else []


def rewrite_pgbouncer_ini(text: str, databases: list[str], host: str, port: int) -> tuple[str, int]:
    """The ini with host= and port= of the [databases] entries (all, or those named) set."""
    out, section, changed = [], "", 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]").strip().lower()
        elif section == "databases" and "=" in stripped and not stripped.startswith((";", "#")):
            name, _, value = line.partition("=")
            if not databases or name.strip() in databases:
                value = _set(_set(value, "host", host), "port", str(port))
                out.append(f"{name}={value}")
                changed += 1
                continue
        out.append(line)
    return "".join(out), changed


def _set(value: str, key: str, new: str) -> str:
    pattern = re.compile(rf"(\b{key}\s*=\s*)\S+")
    if pattern.search(value):
        return pattern.sub(lambda m: m.group(1) + new, value, count=1)
    return value.rstrip("\n") + f" {key}={new}\n"


def repoint(ws: Workspace, r: Repoint, *, name: str, host: str, port: int, failover: bool) -> str:
    if r.type == "pgbouncer":
        path = Path(str(r.path))
        text, changed = rewrite_pgbouncer_ini(path.read_text(), _pgbouncer_dbs(r), host, port)
        if not changed:
            raise OperationError(f"{path}: no [databases] entry to repoint")
        write_atomic(path, text.encode(), mode=path.stat().st_mode & 0o777)
        commands = ["RELOAD"]
        if failover:  # server connections to the lost primary hang: drop them
            commands += [c for db in _targets(r, text) for c in (f"KILL {db}", f"RESUME {db}")]
        _admin(str(r.admin_dsn), *commands)
        return f"pgbouncer {path}: {changed} entr(ies) now {host}:{port}, reloaded"
    if r.type == "env_file":
        return _env_file(ws, r, name=name, host=host, port=port)
    if r.type == "haproxy":
        where = f"{r.backend}/{r.server}"
        _haproxy(str(r.socket), f"set server {where} addr {host} port {port}")
        _haproxy(str(r.socket), f"set server {where} state ready")
        return f"haproxy {where} now {host}:{port}"
    env = {"DRKIT_PRIMARY_NAME": name, "DRKIT_PRIMARY_HOST": host, "DRKIT_PRIMARY_PORT": str(port)}
    proc = run(list(r.command), timeout=120, check=False, env=env)
    if proc.returncode != 0:
        raise OperationError(f"hook {r.command[0]} failed: {last_line(proc.stderr, proc.stdout)}")
    return f"hook {r.command[0]} ran"


def repoint_all(
    ws: Workspace, repoints: tuple[Repoint, ...], name: str, host: str, port: int, *, failover: bool
) -> str:
    """Every configured repoint, in order; what each did."""
    said = [repoint(ws, r, name=name, host=host, port=port, failover=failover) for r in repoints]
    return "; ".join(said) or "no repoint configured"


def _targets(r: Repoint, text: str) -> list[str]:
    if r.databases:
        return list(r.databases)
    _, section, names = None, "", []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s.strip("[]").strip().lower()
        elif section == "databases" and "=" in s and not s.startswith((";", "#")):
            names.append(s.partition("=")[0].strip())
    return [n for n in names if n != "*"]


def _env_file(ws: Workspace, r: Repoint, *, name: str, host: str, port: int) -> str:
    path = Path(str(r.path))
    value = r.format.format(host=host, port=port, name=name)
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    key = str(r.key)
    hit = [i for i, line in enumerate(lines) if line.split("=", 1)[0].strip() == key]
    if hit:
        lines[hit[0]] = f"{key}={value}\n"
    else:
        lines.append(f"{key}={value}\n")
    write_atomic(path, "".join(lines).encode(), mode=0o600)
    restarted = []
    graph = ServiceGraph.from_stack(ws.stack)
    for level in graph.start_plan(list(r.restart)):
        for svc in level:
            if svc in r.restart:
                runtime = runtime_for(ws.stack.service(svc), ws.state_dir)
                runtime.stop()
                runtime.start()
                restarted.append(svc)
    return f"{path}: {key}={value}" + (f"; restarted {', '.join(restarted)}" if restarted else "")


def _haproxy(path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        try:
            s.connect(path)
            s.sendall(command.encode() + b"\n")
            answer = s.recv(65536).decode(errors="replace").strip()
        except OSError as exc:
            raise OperationError(f"haproxy runtime API {path}: {exc.strerror or exc}") from exc
    if answer and not answer.lower().startswith(("ip changed", "no need to change")) and "port" not in answer:
        raise OperationError(f"haproxy {command!r}: {answer}")
    return answer


def pause_writers(ws: Workspace, repoints: tuple[Repoint, ...], services: tuple[str, ...]) -> str:
    done = []
    for r in repoints:
        if r.type == "pgbouncer":
            text = Path(str(r.path)).read_text()
            _admin(str(r.admin_dsn), *(f"PAUSE {db}" for db in _targets(r, text)))
            done.append(f"pgbouncer {r.path} paused")
    for name in services:
        runtime_for(ws.stack.service(name), ws.state_dir).pause()
        done.append(f"{name} paused")
    return "; ".join(done) or "no writer to pause configured (failover.pause, a pgbouncer repoint)"


def resume_writers(ws: Workspace, repoints: tuple[Repoint, ...], services: tuple[str, ...]) -> str:
    done = []
    for name in services:
        runtime_for(ws.stack.service(name), ws.state_dir).unpause()
        done.append(f"{name} resumed")
    for r in repoints:
        if r.type == "pgbouncer":
            text = Path(str(r.path)).read_text()
            _admin(str(r.admin_dsn), *(f"RESUME {db}" for db in _targets(r, text)))
            done.append(f"pgbouncer {r.path} resumed")
    return "; ".join(done) or "nothing to resume"
