"""Fence a lost primary so it cannot take writes, now or after a reboot: stop it through its
runtime (at once when no standby can reach it anyway: a clean stop would only wait for its
walsenders), make that last (the unit masked, the container's restart policy `no`, and
`standby.signal` in its data directory wherever drkit can reach it: started again, it comes
back read-only), then verify it: its process gone and its port not answering from here."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from drkit.domain.errors import DrkitError
from drkit.domain.stack import Member, Service
from drkit.engines.failover.cluster import Cluster
from drkit.engines.failover.standby import data_dir_here, shutdown_lsn
from drkit.infra.clock import Clock
from drkit.runtimes.compose import ComposeRuntime
from drkit.runtimes.factory import fenceable_for
from drkit.runtimes.port import Fenceable

PORT_CHECK = 0.25  # seconds: a listening server on a reachable host answers a SYN far sooner


@dataclass(frozen=True)
class FenceOutcome:
    said: str
    verified: bool
    why_not: str  # when not verified
    at: datetime  # when it was seen stopped
    shutdown_redo: int | None  # its shutdown checkpoint, after a clean stop with its data here

    def facts(self) -> dict[str, Any]:
        return {
            "fenced_at": self.at.isoformat(),
            "fence_verified": self.verified,
            "shutdown_redo": self.shutdown_redo,
            "final_lsn": self.shutdown_redo,
        }


def runtime_of(cluster: Cluster, member: Member) -> Fenceable:
    return fenceable_for(
        Service(name=member.name, kind="postgres", runtime=member.runtime), cluster.state_dir
    )


def fence(cluster: Cluster, member: Member, *, timeout: float, immediate: bool, clock: Clock) -> FenceOutcome:
    """Stop, make it last, verify. Raises OperationError when it cannot be stopped."""
    runtime = runtime_of(cluster, member)
    done = runtime.fence(timeout, immediate=immediate)
    marked = mark_standby(member, runtime)
    answers = port_answers(cluster, member)
    at = clock.now()
    directory = data_dir_here(member)
    redo = shutdown_lsn(member, directory) if directory is not None else None
    lasting = "; ".join(x for x in (done.lasting, marked) if x) or "nothing restarts it by itself"
    problems = []
    if not done.process_gone:
        problems.append("its process is still there")
    if answers:
        problems.append(f"{answers} still accepts connections")
    undo = f"; to undo: {done.undo}" if done.undo else ""
    said = f"{done.how} through its runtime; kept stopped: {lasting}{undo}"
    return FenceOutcome(said, not problems, ", ".join(problems), at, redo)


def mark_standby(member: Member, runtime: Fenceable) -> str:
    """standby.signal in the data directory, where drkit reaches it: started again, the old
    primary comes back as a standby (read-only) until `drkit replica rejoin`."""
    try:
        directory = data_dir_here(member)
        if directory is None and isinstance(runtime, ComposeRuntime):
            directory = _volume_data_dir(runtime)
        if directory is None:
            return ""
        signal = directory / "standby.signal"
        signal.touch()
        owner = directory.stat()
        if os.geteuid() == 0:
            os.chown(signal, owner.st_uid, owner.st_gid)
    except (DrkitError, OSError) as exc:
        return f"standby.signal not written ({exc})"
    return f"standby.signal in {directory}"


def _volume_data_dir(runtime: ComposeRuntime) -> Path | None:
    """PGDATA inside the container's data volume, as a path on this host."""
    volume, mount = runtime.volume_mount()
    pgdata = runtime.env().get("PGDATA", mount)
    relative = os.path.relpath(pgdata, mount)
    if relative.startswith(".."):
        return None
    path = Path(runtime.volume_path(volume)) / relative
    return path if (path / "PG_VERSION").exists() else None


def port_answers(cluster: Cluster, member: Member) -> str:
    """`host:port` when a server accepts connections there, else ""."""
    host, port = cluster.host_port(member)
    try:
        if host.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(PORT_CHECK)
                s.connect(f"{host}/.s.PGSQL.{port}")
        else:
            socket.create_connection((host, port), timeout=PORT_CHECK).close()
    except OSError:
        return ""
    return f"{host}:{port}"
