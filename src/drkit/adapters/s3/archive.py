"""Reading objects a lifecycle rule moved to an archive tier (GLACIER, DEEP_ARCHIVE).

S3 refuses a GET of such an object (403 InvalidObjectState) until a restore request
(RestoreObject: POST ?restore with the days and the retrieval tier) has completed; a HEAD
says where it stands: `x-amz-storage-class: GLACIER`, and `x-amz-restore:
ongoing-request="true"` while S3 works on it, `ongoing-request="false", expiry-date="..."`
once the temporary copy is readable. RestoreObject answers 202 (requested), 200 (already
restored), 409 RestoreAlreadyInProgress, 503 GlacierExpeditedRetrievalNotAvailable.
(AWS's own documentation of these calls, as bundled in botocore's S3 service model.)

`Thaw` requests every object of a batch at once and waits for all of them, polling with a
deadline and saying what it waits for and for how long; a restore takes hours, so a batch
is the unit (never one object after the other).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drkit.adapters.s3.client import S3Endpoint, error_code, s3_errors
from drkit.domain.durations import format_duration
from drkit.domain.errors import RepositoryError
from drkit.domain.storage_policy import ARCHIVE_CLASSES, TYPICAL_RESTORE, ArchiveRestore
from drkit.infra.clock import Clock, SystemClock
from drkit.infra.wait import wait_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Notice = Callable[[str], None]
ARCHIVED_CODES = frozenset({"InvalidObjectState"})


def stderr_notice(message: str) -> None:
    """A timestamped line on stderr: a wait of hours must show in a terminal and in a log."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sys.stderr.write(f"{stamp} {message}\n")
    sys.stderr.flush()


def is_archived_error(exc: BaseException) -> bool:
    return error_code(exc) in ARCHIVED_CODES


@dataclass(frozen=True)
class ArchiveState:
    key: str
    storage_class: str  # STANDARD when S3 sends no x-amz-storage-class
    restore: str | None  # the x-amz-restore header, as sent

    @property
    def archived(self) -> bool:
        return self.storage_class in ARCHIVE_CLASSES

    @property
    def in_progress(self) -> bool:
        return self.restore is not None and 'ongoing-request="true"' in self.restore

    @property
    def readable(self) -> bool:
        return not self.archived or (self.restore is not None and 'ongoing-request="false"' in self.restore)


def head_state(client: S3Client, bucket: str, key: str) -> ArchiveState:
    found: Any = client.head_object(Bucket=bucket, Key=key)
    return ArchiveState(key, str(found.get("StorageClass") or "STANDARD"), found.get("Restore"))


def request_restore(client: S3Client, bucket: str, key: str, settings: ArchiveRestore) -> str:
    """`requested`, `restored` (a readable copy exists) or `in-progress`."""
    from botocore.exceptions import ClientError

    try:
        response: Any = client.restore_object(
            Bucket=bucket,
            Key=key,
            RestoreRequest={"Days": settings.days, "GlacierJobParameters": {"Tier": settings.tier.value}},
        )
    except ClientError as exc:
        if error_code(exc) == "RestoreAlreadyInProgress":
            return "in-progress"
        raise
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 202))
    return "restored" if status == 200 else "requested"


@dataclass
class ThawReport:
    """What one batch needed: requests sent, objects found already on their way or readable."""

    objects: int = 0
    requested: int = 0
    in_progress: int = 0
    readable: int = 0
    classes: set[str] = field(default_factory=set)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "classes": sorted(self.classes)}


class Thaw:
    """Make a batch of objects readable: request the restore of each archived one, then wait
    (unless told not to) until every one is readable, within `settings.wait`."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        endpoint: S3Endpoint,
        settings: ArchiveRestore,
        *,
        clock: Clock | None = None,
        notice: Notice = stderr_notice,
        where: str = "",
    ) -> None:
        self.client, self.bucket, self.endpoint, self.settings = client, bucket, endpoint, settings
        self.clock = clock or SystemClock()
        self.notice = notice
        self.where = where or f"s3://{bucket}"

    def typical(self, classes: set[str]) -> str:
        known = [TYPICAL_RESTORE.get((c, self.settings.tier)) for c in sorted(classes)]
        return ", ".join(k for k in known if k) or "unknown"

    def run(self, keys: list[str], *, wait: bool = True) -> ThawReport:
        report = ThawReport(objects=len(keys))
        pending: list[str] = []
        with s3_errors(
            self.endpoint, f"requesting restores from the archive tier of {self.where}", RepositoryError
        ):
            for key in keys:
                state = head_state(self.client, self.bucket, key)
                if state.archived:
                    report.classes.add(state.storage_class)
                if state.readable:
                    report.readable += 1
                    continue
                if (
                    state.in_progress
                    or request_restore(self.client, self.bucket, key, self.settings) == "in-progress"
                ):
                    report.in_progress += 1
                else:
                    report.requested += 1
                pending.append(key)
        if pending:
            self.notice(
                f"{len(pending)} object(s) of {self.where} are in {'/'.join(sorted(report.classes))}: "
                f"{report.requested} restore request(s) sent, {report.in_progress} already under way "
                f"(tier {self.settings.tier.value}, typically {self.typical(report.classes)}; "
                f"readable for {self.settings.days} day(s) once restored)"
            )
        if pending and wait:
            report.seconds = self._wait(pending, report)
            report.readable = report.objects
        return report

    def _wait(self, pending: list[str], report: ThawReport) -> float:
        started = self.clock.monotonic()
        poll = max(self.settings.poll.total_seconds(), 0.01)
        waiting = list(pending)

        def done() -> bool:
            with s3_errors(self.endpoint, f"asking how the restores of {self.where} stand", RepositoryError):
                still = [k for k in waiting if not head_state(self.client, self.bucket, k).readable]
            waiting[:] = still
            elapsed = format_duration(self.clock.monotonic() - started)
            if still:
                self.notice(
                    f"waiting for the archive: {len(pending) - len(still)}/{len(pending)} object(s) "
                    f"readable after {elapsed} (typically {self.typical(report.classes)})"
                )
            return not still

        total = self.settings.wait.total_seconds()
        wait_for(
            done,
            timeout=total,
            what=f"{len(pending)} object(s) of {self.where} to come back from the archive tier "
            f"(the requests stand: run again later; typically {self.typical(report.classes)})",
            interval=poll,
            max_interval=poll,
            clock=self.clock,
            error=RepositoryError,
        )
        seconds = self.clock.monotonic() - started
        self.notice(f"{len(pending)} object(s) of {self.where} readable after {format_duration(seconds)}")
        return seconds


def folder_batch(client: S3Client, bucket: str, key: str) -> list[str]:
    """The archived objects a restore will read after `key`: in its folder, from it on (a
    backup's parts, a timeline's WAL are read in name order), `key` itself first."""
    folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    batch = [key]
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, StartAfter=key)
    for page in pages:
        for item in page.get("Contents", []):
            name = item["Key"]
            if "/" not in name[len(folder) :] and str(item.get("StorageClass") or "") in ARCHIVE_CLASSES:
                batch.append(name)
    return batch
