"""Leases: a backup in progress says, in the repository itself, who writes it and until when.

flock protects one host. On a repository several hosts share (one S3 bucket), the cleanup of
a killed run's leftovers must not delete a backup another host is writing: so a backup
claims its id by creating `<backup dir>/lease.json` (create-if-absent, before the first
part) with its owner (host id, pid, run id) and an expiry, and renews it in the background
while it runs. A cleaner removes an incomplete backup only when it has no lease, its lease
expired, or the lease is this host's and its process is dead.

Clock skew: expiry is written with the writer's clock and compared with the cleaner's. A
lease is renewed every RENEW_EVERY and a renewal may fail once (it is tried again next
round), so a live writer's lease always has at least LEASE_TTL - 2 * RENEW_EVERY left by
its own clock: hosts whose clocks disagree by less than MAX_CLOCK_SKEW (4 minutes) never
take a live backup for a dead one. NTP keeps them within milliseconds. A cleaner with a
clock further ahead could remove a live backup's files; the writer then finds its lease
gone at its next renewal and refuses to commit (`confirm`), and the commit point checks
that every file it names is still stored (core/commit.py), so what could be lost is that
one backup run, never a committed backup.

A renewal never creates the lease: it replaces it only while it still holds what this run
last wrote (`Repository.replace_if`), so a lease that a cleaner removed, or that another
host created in its place, is never brought back or overwritten; the run marks it lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from drkit.adapters.repository.port import Repository
from drkit.domain.errors import OperationError, RepositoryError
from drkit.infra.clock import Clock

RENEW_EVERY = 30.0  # seconds between renewals
LEASE_TTL = 10 * RENEW_EVERY  # a lease not renewed for this long is expired
MAX_CLOCK_SKEW = LEASE_TTL - 2 * RENEW_EVERY  # seconds two hosts' clocks may disagree by
HOST_ID_ENV = "DRKIT_HOST_ID"
MACHINE_ID = Path("/etc/machine-id")


def host_id(configured: str | None = None) -> str:
    """DRKIT_HOST_ID, else stack.yaml's `host_id`, else hostname + /etc/machine-id.

    The hostname is kept beside the machine id: containers cloned from one image may share
    a machine id, and a pid is only meaningful on the host (pid namespace) that owns it."""
    chosen = os.environ.get(HOST_ID_ENV) or configured
    if chosen:
        return chosen
    try:
        machine = MACHINE_ID.read_text().strip()[:12]
    except OSError:
        machine = ""
    return f"{socket.gethostname()}:{machine}" if machine else socket.gethostname()


@dataclass(frozen=True)
class Lease:
    host: str
    pid: int
    run_id: str
    backup_id: str
    acquired_at: datetime
    expires_at: datetime

    def to_json(self) -> bytes:
        record = asdict(self)
        record["acquired_at"] = self.acquired_at.isoformat()
        record["expires_at"] = self.expires_at.isoformat()
        return json.dumps(record, indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Lease:
        record = json.loads(raw)
        return cls(
            host=str(record["host"]),
            pid=int(record["pid"]),
            run_id=str(record["run_id"]),
            backup_id=str(record["backup_id"]),
            acquired_at=datetime.fromisoformat(record["acquired_at"]),
            expires_at=datetime.fromisoformat(record["expires_at"]),
        )

    def describe(self) -> str:
        until = f"{self.expires_at:%Y-%m-%dT%H:%M:%SZ}"
        return f"pid {self.pid} on {self.host} (run {self.run_id}, until {until})"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def stale_reason(repo: Repository, key: str, *, host: str, now: datetime) -> str | None:
    """Why the backup guarded by lease `key` may be removed, or None while it may still run."""
    try:
        raw = repo.get(key)
    except FileNotFoundError:
        return "no lease"
    try:
        lease = Lease.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: never guess that another host is done
    if lease.expires_at <= now:
        return f"lease of {lease.describe()} expired"
    if lease.host == host and not pid_alive(lease.pid):
        return f"pid {lease.pid} of this host ({host}) is gone"
    return None


class LeaseKeeper:
    """Holds the lease of the backup one run writes: claim, renew in the background, release."""

    def __init__(
        self,
        repo: Repository,
        clock: Clock,
        *,
        host: str,
        renew_every: float = RENEW_EVERY,
        ttl: float = LEASE_TTL,
    ) -> None:
        self.repo = repo
        self.clock = clock
        self.host = host
        self.run_id = f"{clock.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self.renew_every = renew_every
        self.ttl = timedelta(seconds=ttl)
        self.key: str | None = None
        self.lease: Lease | None = None
        self.lost: str | None = None
        self._renewing = threading.Lock()  # the background thread and confirm() both renew
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, key: str, backup_id: str) -> bool:
        """Create the lease at `key`; False when that id is already taken (by anyone).
        Renewal starts with `keep()`; `withdraw()` gives up a claim made by mistake."""
        if self.key is not None:
            raise OperationError(f"run {self.run_id} already holds the lease of {self.key}")
        now = self.clock.now()
        lease = Lease(self.host, os.getpid(), self.run_id, backup_id, now, now + self.ttl)
        try:
            self.repo.put(key, lease.to_json(), overwrite=False)
        except FileExistsError:
            return False
        self.key, self.lease = key, lease
        return True

    def withdraw(self) -> None:
        if self.key is not None:
            self.repo.delete(self.key)
        self.key = self.lease = None

    def keep(self) -> None:
        """Renew the claimed lease in a background thread until `release()`."""
        if self.lease is None or self._thread is not None:
            return
        name = f"lease {self.lease.backup_id}"
        self._thread = threading.Thread(target=self._renew_loop, name=name, daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                self.renew()
            except RepositoryError:
                continue  # try again next round; the lease has LEASE_TTL of slack
            if self.lost:
                return

    def renew(self) -> None:
        """Push the expiry forward, unless the lease is no longer ours (then mark it lost):
        replaced only while it holds what this run last wrote, never created again."""
        with self._renewing:
            if self.key is None or self.lease is None or self.lost:
                return
            renewed = replace(self.lease, expires_at=self.clock.now() + self.ttl)
            if not self.repo.replace_if(self.key, renewed.to_json(), expected=self.lease.to_json()):
                self.lost = (
                    f"the lease {self.key} was removed or taken over while the backup ran (another "
                    "host's cleanup found it expired: a pause longer than "
                    f"{self.ttl.total_seconds():.0f}s, or clocks apart by more than {MAX_CLOCK_SKEW:.0f}s)"
                )
                return
            self.lease = renewed

    def confirm(self) -> None:
        """Before the commit point: refuse to commit a backup whose lease was lost."""
        if self.key is None:
            return
        self.renew()
        if self.lost:
            raise OperationError(f"{self.lost}; its files may have been removed, not committing it")

    def release(self) -> None:
        """Stop renewing and delete the lease (best effort: an undeleted one expires)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.key is not None and not self.lost:
            with contextlib.suppress(RepositoryError):
                self.repo.delete(self.key)
