"""What a PostgreSQL restore is asked (RestoreRequest) and reports (RestoreOutcome), and the
one line a failed restore ends with: why, and what is left where."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from drkit.domain.errors import Cancelled, DrkitError, OperationError, RolledBackError
from drkit.domain.recovery import RecoveryTarget
from drkit.infra.interrupt import Interrupted


@dataclass(frozen=True)
class RestoreRequest:
    target: RecoveryTarget = field(default_factory=RecoveryTarget)
    backup_id: str | None = None
    to: Path | None = None
    in_place: bool = False
    keep_running: bool = False
    quarantine: bool = True  # a copy restored beside production must not archive into it
    # In place on another stack's server (a drill's copy restored from production's backups):
    # archive into this stack's repository, whatever archive_command the backup carries.
    own_archive: bool = False
    port: int | None = None
    timeout: float = 3600.0  # the whole recovery, however long it makes progress
    stall: float = 600.0  # recovery that moves no further for this long has failed
    timeline: int | None = None  # None: the newest timeline that descends from the backup


@dataclass(frozen=True)
class RestoreOutcome:
    backup_id: str
    target: str
    data_dir: str
    moved_aside: str | None
    reached_lsn: str | None
    reached_time: datetime | None
    timeline: int | None
    started_at: datetime
    finished_at: datetime
    running: bool
    port: int | None
    notes: tuple[str, ...] = ()  # what else happened: WAL saved from the old pg_wal, ...

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


def why(exc: BaseException) -> str:
    """One line for what stopped a restore."""
    if isinstance(exc, Interrupted):
        return f"interrupted by {exc.signal_name}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, DrkitError):
        return exc.message
    if isinstance(exc, OSError):
        return os_error(exc)
    return f"{type(exc).__name__}: {exc}"


def os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device{where}"
    return f"{exc.strerror or exc}{where}"


def restore_failed(exc: BaseException, left: str, *, rolled_back: bool = False) -> OperationError:
    """The error a failed restore raises once it cleaned up: why; what is left where."""
    error: type[OperationError] = RolledBackError if rolled_back else OperationError
    if isinstance(exc, KeyboardInterrupt | Cancelled):
        error = Cancelled
    hint = exc.hint if isinstance(exc, DrkitError) else None
    return error(f"{why(exc)}; {left}", hint=hint)
