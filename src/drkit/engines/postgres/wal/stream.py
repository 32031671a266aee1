"""WAL streaming: `drkit wal-stream` supervises pg_receivewal through a replication slot and
moves what it writes (complete segments, the current partial) from a local spool into the
archive; a restore flushes the spool first."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drkit.adapters.postgres.receivewal import create_slot_args, receivewal_args
from drkit.domain.errors import OperationError
from drkit.domain.stack import Service
from drkit.domain.wal import PARTIAL_RE, SEGMENT_RE, is_wal_file_name
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.wal.archive import WalArchive, archive_for
from drkit.infra.proc import Child, run


def spool_dir(ws: Workspace, service: Service) -> Path:
    return ws.state_dir / "wal-spool" / service.name


@dataclass
class SpoolPusher:
    """Moves what pg_receivewal wrote into the archive: complete segments (then removed from
    the spool) and the current `.partial` whenever it changed (kept: the receiver resumes it)."""

    archive: WalArchive
    spool: Path
    _partial_seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def push_ready(self) -> list[str]:
        pushed: list[str] = []
        if not self.spool.is_dir():
            return pushed
        for entry in sorted(os.scandir(self.spool), key=lambda e: e.name):
            name = entry.name
            try:
                if SEGMENT_RE.match(name) or (is_wal_file_name(name) and name.endswith(".history")):
                    self.archive.push(Path(entry.path))
                    os.unlink(entry.path)
                    pushed.append(name)
                elif PARTIAL_RE.match(name):
                    st = entry.stat()
                    stamp = (st.st_mtime_ns, st.st_size)
                    if self._partial_seen.get(name) != stamp:
                        self.archive.push(Path(entry.path))
                        self._partial_seen[name] = stamp
                        pushed.append(name)
            except (FileNotFoundError, OperationError):
                # Another pusher (the receiver's supervisor, or a restore flushing the
                # spool) moved it first: it is in the archive either way.
                if os.path.exists(entry.path):
                    raise
        return pushed


def wal_stream(
    ws: Workspace,
    service: Service,
    *,
    stop: threading.Event,
    poll: float = 0.5,
    log: Callable[[str], None] = print,
) -> None:
    """Supervise pg_receivewal (with a replication slot) until `stop` is set. Its password,
    if any, is in a 0600 passfile that lives as long as this call, never on its command line."""
    from drkit.adapters.postgres.client import service_dsn  # psycopg: not on wal-push
    from drkit.adapters.postgres.toolhost import give_to_container_user, long_running, stop_inside, tool_host

    policy = service.postgres
    slot = policy.slot if policy else "drkit"
    spool = spool_dir(ws, service)
    spool.mkdir(parents=True, exist_ok=True)
    bin_dir = service.runtime.bin_dir
    pusher = SpoolPusher(archive_for(ws, service), spool)
    # compose: pg_receivewal runs in the container and writes into the spool, which the
    # container mounts at the same path (docs/nself.md, "Docker and compose").
    with tool_host(service, service_dsn(service)) as host:
        login = host.login
        give_to_container_user(host, str(spool))
        run(host.argv(create_slot_args(login, bin_dir, slot)), timeout=60, env=login.env)
        backoff = 1.0
        while not stop.is_set():
            args = long_running(host, receivewal_args(login, bin_dir, slot, spool), str(spool))
            receiver = Child(args, env=login.env)
            log(f"pg_receivewal started (pid {receiver.pid}, slot {slot}) into {spool}")
            try:
                while receiver.proc.poll() is None and not stop.is_set():
                    pusher.push_ready()
                    stop.wait(poll)
            finally:  # also when pushing fails: no receiver is left behind
                problem = stop_inside(host, str(spool))
                if problem:
                    log(f"pg_receivewal may still run in the container: {problem}")
                code = receiver.stop()
            pusher.push_ready()
            if stop.is_set():
                break
            log(f"pg_receivewal exited ({code}): {receiver.last_error()}")
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
    pusher.push_ready()


def flush_spool(ws: Workspace, service: Service) -> list[str]:
    """Push whatever a local receiver left in the spool (used before a restore to latest)."""
    spool = spool_dir(ws, service)
    if not spool.is_dir():
        return []
    try:
        return SpoolPusher(archive_for(ws, service), spool).push_ready()
    except OSError as exc:
        raise OperationError(f"cannot read the WAL spool {spool}: {exc.strerror}") from exc
