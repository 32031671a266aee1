"""The off-site storage policy's decisions without a server: the configuration's rules, which
objects may go to an archive tier, the lifecycle rules drkit asks for, prune's retention
floor, the archive-tier wait and the Object Lock proof's verdicts (docs/offsite.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from drkit.adapters.s3.archive import Thaw
from drkit.adapters.s3.bucket import lifecycle_rules
from drkit.adapters.s3.client import S3Endpoint
from drkit.adapters.s3.lock import LockVerdict, prove
from drkit.adapters.s3.tiering import archivable, put_args
from drkit.config.models import RepositoryModel
from drkit.domain.errors import RepositoryError
from drkit.domain.stack import Retention
from drkit.domain.storage_policy import ArchiveRestore, LockMode, ObjectLock, StoragePolicy, Transition
from drkit.engines.ops.retention_policy import BackupFact, Facts, Policy, WalSpan, decide

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "op"
    )


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"type": "s3", "storage_class": "GLACIER"}, "GLACIER is an archive tier"),
        ({"type": "fs", "path": "/x", "storage_class": "STANDARD_IA"}, "only for repositories of type s3"),
        ({"type": "s3", "object_lock": {"retain": "36h"}}, "whole number of days"),
        (
            {
                "type": "s3",
                "lifecycle": {
                    "transitions": [
                        {"after": "90d", "storage_class": "GLACIER"},
                        {"after": "30d", "storage_class": "STANDARD_IA"},
                    ]
                },
            },
            "in order of `after`",
        ),
        ({"type": "s3", "archive_restore": {"tier": "Fast"}}, "Expedited"),
    ],
)
def test_a_storage_policy_that_cannot_work_is_refused_naming_why(given: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        RepositoryModel.model_validate(given)


def test_the_source_documents_policy_is_accepted() -> None:
    model = RepositoryModel.model_validate(
        {
            "type": "s3",
            "storage_class": "STANDARD_IA",
            "lifecycle": {"transitions": [{"after": "90d", "storage_class": "GLACIER"}]},
            "min_retention": "365d",
            "object_lock": {"mode": "compliance", "retain": "365d"},
        }
    )
    assert model.lifecycle is not None and model.lifecycle.transitions[0].after == 90 * DAY


# --- what goes to the archive tier, and the rules that move it -------------------------------


@pytest.mark.parametrize(
    ("key", "archive"),
    [
        ("nchat/postgres/backups/20260101T000000Z-base/base.00000.tar.zst", True),
        ("nchat/postgres/backups/20260101T000000Z-base/base.00000.tar.zst.age", True),
        ("nchat/postgres/wal/00000001/000000010000000000000003.zst", True),
        ("nchat/minio/objects/uploads/packs/ab/abcdef.pack.zst", True),
        ("nchat/postgres/backups/20260101T000000Z-base/manifest.json", False),
        ("nchat/postgres/backups/20260101T000000Z-base/tarindex.json", False),
        ("nchat/postgres/wal/00000001/000000010000000000000003.sha256", False),
        ("nchat/minio/objects/uploads/catalog/run-00001.jsonl.zst", False),
        ("nchat/minio/backups/20260101T000000Z-objects/uploads.versions.jsonl.zst", False),
        ("nchat/sets/20260101T000000Z.json", False),
        (".drkit-lock-canary/2026-01-01", False),
    ],
)
def test_only_bulk_data_may_go_to_an_archive_tier(key: str, archive: bool) -> None:
    assert archivable(key) is archive


def test_writes_carry_the_storage_class_and_bulk_data_the_archive_tag() -> None:
    policy = StoragePolicy("STANDARD_IA", (Transition(90 * DAY, "GLACIER"),))
    assert put_args(policy, "s/postgres/backups/x/base.00000.tar.zst") == {
        "StorageClass": "STANDARD_IA",
        "Tagging": "drkit-tier=archive",
    }
    assert put_args(policy, "s/postgres/backups/x/manifest.json") == {"StorageClass": "STANDARD_IA"}
    assert put_args(StoragePolicy(), "s/postgres/backups/x/base.00000.tar.zst") == {}


def test_the_lifecycle_rule_moves_tagged_data_under_the_prefix_only() -> None:
    policy = StoragePolicy(
        "STANDARD_IA", (Transition(90 * DAY, "GLACIER"), Transition(180 * DAY, "DEEP_ARCHIVE"))
    )
    archive, uploads = lifecycle_rules(policy, "nchat")
    assert archive["Filter"] == {
        "And": {"Prefix": "nchat/", "Tags": [{"Key": "drkit-tier", "Value": "archive"}]}
    }
    assert archive["Transitions"] == [
        {"Days": 90, "StorageClass": "GLACIER"},
        {"Days": 180, "StorageClass": "DEEP_ARCHIVE"},
    ]
    assert uploads["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


# --- prune's retention floor --------------------------------------------------------------


def test_prune_keeps_backups_and_wal_younger_than_the_repositorys_minimum_retention() -> None:
    old = BackupFact("20250101T000000Z-base", "base", NOW - 200 * DAY, False, WalSpan(1, 1, 1))
    new = BackupFact("20260501T000000Z-base", "base", NOW - 31 * DAY, True, WalSpan(1, 9, 9))
    wal = tuple(f"0000000100000000000000{n:02X}" for n in range(1, 10))
    retention = Retention(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    bare = decide(Facts("postgres", (old, new), wal=wal), Policy(retention, timedelta(days=7)), NOW)
    assert [d.name for d in bare.drop] == [old.backup_id] and len(bare.wal_drop) == 8

    # a year's floor: every backup and every WAL file here is younger than that
    year = Facts("postgres", (old, new), wal=wal, wal_recent=frozenset(wal))
    floored = decide(year, Policy(retention, timedelta(days=7), floor=365 * DAY), NOW)
    assert floored.drop == () and floored.wal_drop == ()
    assert next(d for d in floored.keep if d.name == old.backup_id).rule == "min_retention"

    # 100 days: the old backup is older; of the WAL only what was archived within them stays
    recent = Facts("postgres", (old, new), wal=wal, wal_recent=frozenset(wal[4:]))
    shorter = decide(recent, Policy(retention, timedelta(days=7), floor=100 * DAY), NOW)
    assert [d.name for d in shorter.drop] == [old.backup_id]
    assert [d.name for d in shorter.wal_drop] == list(wal[:4])


# --- the archive tier: request once, wait with a deadline ------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return NOW + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class ArchiveClient:
    """HEAD and RestoreObject as S3 answers them for archived objects (docs/offsite.md)."""

    def __init__(self, archived: dict[str, str], ready_after: float, clock: FakeClock) -> None:
        self.archived, self.ready_after, self.clock = archived, ready_after, clock
        self.requested: dict[str, float] = {}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        out: dict[str, Any] = {"ContentLength": 1}
        if Key in self.archived:
            out["StorageClass"] = self.archived[Key]
            if Key in self.requested:
                done = self.clock.t - self.requested[Key] >= self.ready_after
                out["Restore"] = (
                    'ongoing-request="false", expiry-date="x"' if done else 'ongoing-request="true"'
                )
        return out

    def restore_object(self, Bucket: str, Key: str, RestoreRequest: dict[str, Any]) -> dict[str, Any]:
        if Key not in self.archived:
            raise _error("InvalidObjectState", 403)
        if Key in self.requested:
            raise _error("RestoreAlreadyInProgress", 409)
        self.requested[Key] = self.clock.t
        return {"ResponseMetadata": {"HTTPStatusCode": 202}}


def _thaw(client: ArchiveClient, clock: FakeClock, wait: timedelta, lines: list[str]) -> Thaw:
    settings = ArchiveRestore(days=3, wait=wait, poll=timedelta(minutes=10))
    return Thaw(client, "b", S3Endpoint("http://s3"), settings, clock=clock, notice=lines.append)  # type: ignore[arg-type]


def test_archived_objects_are_requested_once_and_waited_for_with_the_time_shown() -> None:
    clock = FakeClock()
    client = ArchiveClient({"a.zst": "GLACIER", "b.zst": "GLACIER"}, ready_after=3 * 3600, clock=clock)
    lines: list[str] = []
    report = _thaw(client, clock, timedelta(hours=48), lines).run(["a.zst", "b.zst", "manifest.json"])
    assert report.requested == 2 and report.objects == 3 and sorted(client.requested) == ["a.zst", "b.zst"]
    assert 3 * 3600 <= report.seconds <= 3 * 3600 + 600
    assert "typically 3-5 hours" in lines[0] and "readable for 3 day(s)" in lines[0]
    assert any("0/2 object(s) readable after" in line for line in lines)
    assert lines[-1].startswith("2 object(s)") and "readable after 3h" in lines[-1]


def test_a_restore_that_outlasts_the_wait_fails_saying_the_requests_stand() -> None:
    clock = FakeClock()
    client = ArchiveClient({"a.zst": "DEEP_ARCHIVE"}, ready_after=12 * 3600, clock=clock)
    with pytest.raises(RepositoryError, match="the requests stand"):
        _thaw(client, clock, timedelta(hours=1), []).run(["a.zst"])
    assert len(client.requested) == 1


# --- the Object Lock proof's verdicts ----------------------------------------------------------


class LockClient:
    """A versioned bucket as the proof sees it; `retention` is what a new object gets."""

    def __init__(self, retention: tuple[str, timedelta] | None, *, may_delete: bool, enforced: bool) -> None:
        self.retention, self.may_delete, self.enforced = retention, may_delete, enforced
        self.versions: dict[str, dict[str, Any]] = {}

    def list_object_versions(self, Bucket: str, Prefix: str) -> dict[str, Any]:
        return {"Versions": [{"Key": v["Key"], "VersionId": vid, "LastModified": v["LastModified"]}
                             for vid, v in self.versions.items()]}  # fmt: skip

    def put_object(self, Bucket: str, Key: str, Body: bytes, **extra: Any) -> dict[str, Any]:
        vid = f"v{len(self.versions) + 1}"
        self.versions[vid] = {"Key": Key, "LastModified": NOW}
        return {"VersionId": vid}

    def head_object(self, Bucket: str, Key: str, VersionId: str) -> dict[str, Any]:
        if VersionId not in self.versions:
            raise _error("404", 404)
        out: dict[str, Any] = {"LastModified": NOW}
        if self.retention:
            out.update(ObjectLockMode=self.retention[0], ObjectLockRetainUntilDate=NOW + self.retention[1])
        return out

    def delete_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        if not self.may_delete:
            raise _error("AccessDenied", 403)
        if VersionId is None:
            return {"VersionId": "marker", "DeleteMarker": True}
        if VersionId == "marker":
            return {}
        if self.retention and self.enforced:
            raise _error("AccessDenied", 403)
        self.versions.pop(VersionId, None)
        return {}


LOCK = ObjectLock(LockMode.COMPLIANCE, 365 * DAY)


@pytest.mark.parametrize(
    ("client", "verdict", "says"),
    [
        (
            LockClient(("COMPLIANCE", 365 * DAY), may_delete=True, enforced=True),
            LockVerdict.ENFORCED,
            "no one can",
        ),
        (
            LockClient(("COMPLIANCE", 365 * DAY), may_delete=True, enforced=False),
            LockVerdict.NOT_ENFORCED,
            "does not enforce",
        ),
        (
            LockClient(("COMPLIANCE", 365 * DAY), may_delete=False, enforced=True),
            LockVerdict.UNPROVEN,
            "prove_with",
        ),
        (LockClient(None, may_delete=True, enforced=True), LockVerdict.NOT_LOCKED, "no retention"),
        (
            LockClient(("GOVERNANCE", 365 * DAY), may_delete=True, enforced=True),
            LockVerdict.NOT_LOCKED,
            "GOVERNANCE retention",
        ),
        (
            LockClient(("COMPLIANCE", 30 * DAY), may_delete=True, enforced=True),
            LockVerdict.NOT_LOCKED,
            "for 30 day(s)",
        ),
    ],
)
def test_a_copy_is_called_immutable_only_when_a_locked_delete_was_refused(
    client: LockClient, verdict: LockVerdict, says: str
) -> None:
    proof = prove(client, "b", "nchat", LOCK, NOW, {})  # type: ignore[arg-type]
    assert proof.verdict is verdict and says in proof.detail
    assert proof.immutable is (verdict is LockVerdict.ENFORCED)
    assert proof.canary == "nchat/.drkit-lock-canary/2026-06-01"
