"""`drkit check`'s clock checks: backups dated ahead of this host's clock (never chosen by a
restore, core/choose.py), and how far this host's clock is from the repository's (a lease's
expiry is compared across hosts: core/lease.py tolerates MAX_CLOCK_SKEW)."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

from drkit.domain.checks import CheckResult, Status
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.choose import FUTURE_ALLOWANCE, unproven_backups
from drkit.engines.core.lease import MAX_CLOCK_SKEW
from drkit.engines.core.workspace import Workspace

CLOCK_PROBE_PREFIX = ".drkit-clock/"
CLOSE_ENOUGH = timedelta(seconds=30)  # S3 keeps whole seconds; a request takes a moment


def check_backup_times(ws: Workspace) -> list[CheckResult]:
    """Per service: backups whose times this host cannot believe (a failed check each)."""
    now = ws.clock.now()
    out = []
    for service in sorted(ws.stack.services):
        doubted = unproven_backups(list_backups(ws.repo, ws.stack.name, service).complete, now)
        if doubted:
            detail = "; ".join(u.describe() for u in doubted)
            out.append(
                CheckResult(
                    f"{service}: backup times",
                    Status.FAILED,
                    f"{detail}: no restore chooses it; check this host's clock and the clock of the host "
                    "that took it (drkit restore --backup ID still takes it)",
                )
            )
    if not out:
        allowance = FUTURE_ALLOWANCE.total_seconds() / 60
        detail = f"no backup is dated more than {allowance:.0f} min ahead of this host's clock"
        out.append(CheckResult("backup times", Status.OK, detail))
    return out


def check_repository_clock(ws: Workspace) -> list[CheckResult]:
    """This host's clock against the time the repository stamps on a write (an S3 server's
    clock; a filesystem's own). Beyond MAX_CLOCK_SKEW another host's cleanup could take a
    live backup's lease for an expired one."""
    key = f"{CLOCK_PROBE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    before = ws.clock.now()
    ws.repo.put(key, b"clock probe")
    after = ws.clock.now()
    try:
        stamped = next((e.modified for e in ws.repo.entries(CLOCK_PROBE_PREFIX) if e.key == key), None)
    finally:
        ws.repo.delete(key)
    if stamped is None:
        return [CheckResult("repository clock", Status.WARNING, "the probe was not listed back", False)]
    skew = max(before - stamped, stamped - after, timedelta(0))
    seconds = skew.total_seconds()
    where = "behind" if stamped < before else "ahead of"
    tolerated = f"leases tolerate {MAX_CLOCK_SKEW:.0f}s"
    detail = f"the repository's clock is {seconds:.0f}s {where} this host's ({tolerated})"
    if skew <= CLOSE_ENOUGH:
        return [CheckResult("repository clock", Status.OK, f"within {CLOSE_ENOUGH.total_seconds():.0f}s")]
    if seconds <= MAX_CLOCK_SKEW:
        return [CheckResult("repository clock", Status.WARNING, detail + ": run NTP on both", False)]
    return [CheckResult("repository clock", Status.FAILED, detail + ": run NTP on both before backups")]
