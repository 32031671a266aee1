"""`drkit check`, archiving proven end to end: close the primary's current WAL segment (after
a named restore point, so there is one to close) and wait until drkit's repository holds it,
as pgBackRest's `check` does. Settings that look right and a counter of archived files do not
prove that a recovery will find the WAL it needs; a segment that made the whole trip does."""

from __future__ import annotations

from drkit.adapters.postgres.client import scalar, service_dsn
from drkit.adapters.postgres.server import ServerInfo
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service, WalMode
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.switch_wal import switch_wal_and_wait

PROOF_WAIT = 60.0
RESTORE_POINT = "drkit-check"


def archive_proof(ws: Workspace, service: Service, info: ServerInfo) -> list[CheckResult]:
    """One result: the segment that reached the repository and how long it took, or why the
    proof did not run or failed. Nothing when WAL capture is not configured (other checks
    already fail on that)."""
    name = f"{service.name}: archiving proof"
    stream = service.postgres is not None and service.postgres.wal_mode is WalMode.STREAM
    if not stream and not _archives_with_drkit(info):
        return []
    if scalar(service_dsn(service), "select pg_is_in_recovery()"):
        return [CheckResult(name, Status.OK, "a standby: the proof runs on the primary", critical=False)]
    try:
        switched = switch_wal_and_wait(ws, service, restore_point=RESTORE_POINT, timeout=PROOF_WAIT)
    except DrkitError as exc:
        return [CheckResult(name, Status.FAILED, f"WAL does not reach the repository: {exc.message}")]
    return [
        CheckResult(
            name,
            Status.OK,
            f"switched WAL; segment {switched.segment} reached the repository in {switched.seconds:.1f}s",
        )
    ]


def _archives_with_drkit(info: ServerInfo) -> bool:
    mode = info.settings.get("archive_mode", "off")
    return mode in ("on", "always") and "wal-push" in info.settings.get("archive_command", "")
