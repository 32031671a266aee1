"""One error tree; every error carries the exit code the CLI returns for it.

Exit codes (ARCHITECTURE.md): 0 ok; 1 operation failed; 2 usage or config error;
3 checks ran and found problems; 4 a recovery or drill missed its RTO/RPO target.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    CHECKS_FAILED = 3
    TARGET_MISSED = 4


class DrkitError(Exception):
    """Base of every error drkit reports to an operator: one clear line and an exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(DrkitError):
    """The configuration file is missing, malformed or invalid. `problems`: every problem
    found, each `file:line: key: what is wrong, what to do` (the message sums them up)."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems


class UsageError(DrkitError):
    """Arguments that cannot be acted on."""

    exit_code = ExitCode.USAGE


class OperationError(DrkitError):
    """An operation was attempted and failed."""


class RolledBackError(OperationError):
    """An operation failed after it had changed something, and put it back: the service
    runs as it did before (the caller may start what it stopped around it again)."""


class Cancelled(OperationError):
    """The operation was interrupted by a signal (SIGINT, SIGTERM) and cleaned up first;
    the message says what is left where."""


class ToolError(OperationError):
    """An external tool (pg_basebackup, psql, ...) failed or timed out."""


class RepositoryError(OperationError):
    """The backup repository could not be read or written."""


class IntegrityError(OperationError):
    """Stored data does not match its manifest (wrong hash, size, missing file)."""


class DecryptionError(OperationError):
    """Encrypted data could not be decrypted (no identity or the wrong one)."""


class LockedError(OperationError):
    """Another drkit process holds the lock for this service and operation."""


class NotFoundError(OperationError):
    """A backup, segment or service that was asked for does not exist."""


class UnreachableTargetError(OperationError):
    """A recovery target that the repository cannot reach; refused before anything is touched."""


class UnsupportedFormatError(OperationError):
    """Stored data written by a newer drkit, in a format this one does not understand."""


class ChecksFailed(DrkitError):
    """Checks ran and at least one critical check failed."""

    exit_code = ExitCode.CHECKS_FAILED


class TargetMissed(DrkitError):
    """A recovery or drill finished but missed its RTO or RPO target."""

    exit_code = ExitCode.TARGET_MISSED
