"""Host-local locks: one per service, so its backup, restore, prune and sync exclude each other.

flock(2) on a 0600 file: released by the kernel when the process dies (kill -9 included).
The holder writes who it is into the file (pid, host, operation, since when), so the one
that is refused can say who holds it. flock protects one host only: what several hosts
share (a repository) is guarded by leases (engines/core/lease.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from drkit.domain.errors import LockedError

HOLDER_MAX = 4096


@contextmanager
def exclusive(lock_dir: Path, name: str, operation: str = "") -> Iterator[None]:
    """Hold `<lock_dir>/<name>.lock` for `operation`; raise LockedError naming the holder."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a lock file left by an older drkit may be wider
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = describe_holder(os.pread(fd, HOLDER_MAX, 0))
            raise LockedError(f"{name} is busy: {holder} holds its lock {path}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_record(operation or name), 0)
        yield
    finally:
        os.close(fd)


def holder_record(operation: str) -> bytes:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "operation": operation,
        "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return (json.dumps(record) + "\n").encode()


def describe_holder(raw: bytes) -> str:
    """`backup (pid 42 on db1, since 2026-11-30T04:00:00Z)`; an older plain pid is read too."""
    text = raw.decode(errors="replace").strip()
    try:
        record = json.loads(text)
    except ValueError:
        return f"pid {text}" if text.isdigit() else "another process"
    if not isinstance(record, dict):
        return "another process"
    return (
        f"{record.get('operation', '?')} (pid {record.get('pid', '?')} on {record.get('host', '?')}, "
        f"since {record.get('since', '?')})"
    )
