"""Types every service engine shares: what a restore is asked (RestoreOptions), what it
answers (RestoreResult), and a verify's report (VerifyReport, NotRead)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from drkit.domain.checks import CheckResult
from drkit.domain.stack import Service
from drkit.engines.core.commit import BackupResult, Progress
from drkit.engines.core.workspace import Workspace


@dataclass(frozen=True)
class RestoreOptions:
    backup_id: str | None = None  # default: the newest (at or before target_time)
    target_time: datetime | None = None  # objects: versions as of this time
    yes: bool = False  # confirmed overwriting a non-empty target
    to: str | None = None  # another target (bucket, directory) instead of the service's own
    prefix: str | None = None  # objects: only keys under this prefix


@dataclass(frozen=True)
class RestoreResult:
    service: str
    backup_id: str
    seconds: float
    detail: str
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)


class ServiceEngine(Protocol):
    def backup(
        self, ws: Workspace, service: Service, *, progress: Progress | None = None
    ) -> BackupResult: ...

    def restore(self, ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult: ...


@dataclass(frozen=True)
class NotRead(CheckResult):
    """Something a restore of the backup reads that this verify could not read (encrypted,
    and no age identity here): a warning, not a failure, but the backup is not recorded as
    verified (`VerifyReport.complete`)."""


@dataclass(frozen=True)
class VerifyReport:
    backup_id: str
    service: str
    deep: bool
    results: tuple[CheckResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(r.failed_critically for r in self.results)

    @property
    def complete(self) -> bool:
        """Everything a restore reads was read and checked (none of it NotRead)."""
        return not any(isinstance(r, NotRead) for r in self.results)

    @property
    def verified(self) -> bool:
        """Worth `verified.json`: ok, and complete."""
        return self.ok and self.complete
