"""How an S3 repository stores what drkit writes there (docs/offsite.md): the storage class of
each object, the bucket's lifecycle transitions to an archive tier, the minimum retention
prune obeys there, S3 Object Lock, and how objects in an archive tier are read back.

Pure data; the S3 calls are in adapters/s3/ (bucket.py, archive.py, lock.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

# Storage classes an object can be written in and read back from at once.
READABLE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")
# Archive tiers: a GET is refused (403 InvalidObjectState) until a restore request completes.
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
TRANSITION_CLASSES = ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", *ARCHIVE_CLASSES)

# The tag that marks an object a lifecycle rule may move to an archive tier (bulk data only:
# manifests, sets, journals, listings and sidecars stay readable; see adapters/s3/tiering.py).
TIER_TAG = ("drkit-tier", "archive")


class LockMode(StrEnum):
    """S3 Object Lock modes. COMPLIANCE: no one (not the bucket's owner) deletes a locked
    version before its date. GOVERNANCE: whoever holds s3:BypassGovernanceRetention can."""

    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


class RetrievalTier(StrEnum):
    """How fast S3 restores an archived object (and what it costs)."""

    EXPEDITED = "Expedited"
    STANDARD = "Standard"
    BULK = "Bulk"


# What AWS documents as the usual time a restore takes, per storage class and tier
# (docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects-retrieval-options.html).
TYPICAL_RESTORE: dict[tuple[str, RetrievalTier], str] = {
    ("GLACIER", RetrievalTier.EXPEDITED): "1-5 minutes",
    ("GLACIER", RetrievalTier.STANDARD): "3-5 hours",
    ("GLACIER", RetrievalTier.BULK): "5-12 hours",
    ("DEEP_ARCHIVE", RetrievalTier.STANDARD): "within 12 hours",
    ("DEEP_ARCHIVE", RetrievalTier.BULK): "within 48 hours",
}


@dataclass(frozen=True)
class Transition:
    """A lifecycle transition: objects tagged for the archive move to `storage_class`
    `after` their creation (whole days)."""

    after: timedelta
    storage_class: str

    @property
    def days(self) -> int:
        return int(self.after.total_seconds() // 86400)


@dataclass(frozen=True)
class ObjectLock:
    """Object Lock for what is written to the repository: the bucket's default retention,
    proven on a canary before drkit calls a copy immutable. `prove_with`: credentials
    (access key, secret key) for the canary only, when the repository's own cannot delete
    versions (as a writer's should not)."""

    mode: LockMode
    retain: timedelta
    prove_with: tuple[str | None, str | None] | None = None

    @property
    def days(self) -> int:
        return int(self.retain.total_seconds() // 86400)


@dataclass(frozen=True)
class ArchiveRestore:
    """Reading objects that a lifecycle rule moved to an archive tier: a restore request per
    object (S3 RestoreObject), then a wait until each is readable."""

    tier: RetrievalTier = RetrievalTier.STANDARD
    days: int = 7  # how long the restored copy stays readable
    wait: timedelta = timedelta(hours=48)  # give up after this long
    poll: timedelta = timedelta(minutes=5)  # how often to ask
    automatic: bool = True  # a read of an archived object requests its restore and waits


@dataclass(frozen=True)
class StoragePolicy:
    storage_class: str | None = None  # every object written there (None: the bucket's default)
    transitions: tuple[Transition, ...] = ()
    min_retention: timedelta | None = None  # prune removes nothing younger there
    object_lock: ObjectLock | None = None
    archive_restore: ArchiveRestore = field(default_factory=ArchiveRestore)

    @property
    def retention_floor(self) -> timedelta | None:
        """The age below which nothing is removed there: the minimum retention, or the
        lock's retention when that is longer."""
        floors = [f for f in (self.min_retention, self.object_lock and self.object_lock.retain) if f]
        return max(floors) if floors else None

    @property
    def archives(self) -> bool:
        return any(t.storage_class in ARCHIVE_CLASSES for t in self.transitions)
