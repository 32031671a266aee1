"""Proving that an S3 server enforces Object Lock, on a canary, before drkit calls a copy
immutable: some servers accept retention settings and still delete locked versions
(SeaweedFS before 4.x, seaweedfs/seaweedfs#7194 and #11333; rustfs/rustfs#1509).

The canary is one small object a day under `<prefix>/.drkit-lock-canary/`, written like any
object sync writes (so it gets the bucket's default retention, which is what every copy
gets). The proof, with the credentials given:

1. its retention is read back (HEAD of the version): the configured mode, for at least the
   configured time, or the bucket does not lock what sync writes;
2. control: a delete marker is put on the canary and that marker's version deleted. Delete
   markers are never locked, so this succeeds exactly when the credentials may delete
   versions (s3:DeleteObject, s3:DeleteObjectVersion). If they may not (as a writer's key
   should not), a refusal below would prove nothing about the lock: the proof is
   `unproven`, and the fix is `object_lock.prove_with`;
3. the canary's locked version is deleted: it must be refused, and the version must still
   be readable afterwards. Then the copy is `enforced`; a delete that went through (or a
   version gone) is `not-enforced`, and the copy is not immutable.

Canaries whose retention has run out are removed on the way (best effort).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from drkit.adapters.s3.client import CREDENTIAL_CODES, S3_FAILURES, error_code, is_not_found
from drkit.domain.storage_policy import ObjectLock

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CANARY_DIR = ".drkit-lock-canary"
CANARY_BODY = b"drkit: Object Lock canary (docs/offsite.md)\n"
SLACK = timedelta(days=1)  # bucket default retention counts whole days


class LockVerdict(StrEnum):
    ENFORCED = "enforced"  # a delete of the locked version was refused, and it is still there
    NOT_ENFORCED = "not-enforced"  # the server deleted (or lost) a locked version
    UNPROVEN = "unproven"  # the credentials cannot delete versions at all: nothing was proven
    NOT_LOCKED = "not-locked"  # what is written there gets no (or a weaker) retention


@dataclass(frozen=True)
class LockProof:
    verdict: LockVerdict
    detail: str
    canary: str = ""
    mode: str | None = None
    retain_until: datetime | None = None

    @property
    def immutable(self) -> bool:
        return self.verdict is LockVerdict.ENFORCED

    def to_dict(self) -> dict[str, Any]:
        until = self.retain_until.isoformat() if self.retain_until else None
        return {
            "verdict": self.verdict.value,
            "immutable": self.immutable,
            "detail": self.detail,
            "canary": self.canary,
            "mode": self.mode,
            "retain_until": until,
        }


def canary_key(prefix: str, now: datetime) -> str:
    return "/".join(p for p in (prefix, CANARY_DIR, now.strftime("%Y-%m-%d")) if p)


def prove(
    client: S3Client, bucket: str, prefix: str, lock: ObjectLock, now: datetime, put_extra: dict[str, Any]
) -> LockProof:
    """Run the proof on today's canary (written first when there is none). S3 failures other
    than the refusals the proof looks for propagate (the caller names the endpoint)."""
    key = canary_key(prefix, now)
    version = _todays_canary(client, bucket, key)
    if version is None or not _exists(client, bucket, key, version):
        version = _write_canary(client, bucket, key, put_extra)
    if version is None:
        return LockProof(LockVerdict.NOT_LOCKED, f"s3://{bucket} is not versioned: no Object Lock there", key)
    weak = _retention(client, bucket, key, version, lock)
    if isinstance(weak, LockProof):
        return weak
    mode, until = weak
    control = _control(client, bucket, key)
    if control:
        return LockProof(LockVerdict.UNPROVEN, control, key, mode, until)
    try:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
        refused = ""
    except S3_FAILURES as exc:
        refused = error_code(exc) or type(exc).__name__
    there = _exists(client, bucket, key, version)
    _remove_expired(client, bucket, key.rsplit("/", 1)[0] + "/", now)
    if refused and there:
        how = "no one can" if mode == "COMPLIANCE" else "only a holder of s3:BypassGovernanceRetention can"
        return LockProof(
            LockVerdict.ENFORCED,
            f"a delete of the locked canary version was refused ({refused}) and it is still there: "
            f"{mode} until {until:%Y-%m-%d}, {how} delete a copy before its date",
            key,
            mode,
            until,
        )
    what = "deleted the locked canary version" if not refused else f"refused ({refused}) but lost the version"
    return LockProof(
        LockVerdict.NOT_ENFORCED,
        f"the server accepted {mode} retention until {until:%Y-%m-%d} and {what}: it does not enforce "
        "Object Lock, so nothing there is immutable",
        key,
        mode,
        until,
    )


def _todays_canary(client: S3Client, bucket: str, key: str) -> str | None:
    listing: Any = client.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v for v in listing.get("Versions", []) if v.get("Key") == key and v.get("VersionId")]
    versions.sort(key=lambda v: v["LastModified"], reverse=True)
    return str(versions[0]["VersionId"]) if versions else None


def _write_canary(client: S3Client, bucket: str, key: str, put_extra: dict[str, Any]) -> str | None:
    written: Any = client.put_object(Bucket=bucket, Key=key, Body=CANARY_BODY, **put_extra)
    version = written.get("VersionId")
    return str(version) if version and version != "null" else None


def _retention(
    client: S3Client, bucket: str, key: str, version: str, lock: ObjectLock
) -> tuple[str, datetime] | LockProof:
    head: Any = client.head_object(Bucket=bucket, Key=key, VersionId=version)
    mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
    if not mode or until is None:
        return LockProof(
            LockVerdict.NOT_LOCKED,
            f"objects written to s3://{bucket} get no retention: set the bucket's default retention "
            f"({lock.mode.value}, {lock.days} days) with `drkit offsite setup`",
            key,
        )
    written = head["LastModified"]
    if mode != lock.mode.value or until < written + lock.retain - SLACK:
        return LockProof(
            LockVerdict.NOT_LOCKED,
            f"objects written to s3://{bucket} get {mode} retention for {(until - written).days} day(s); "
            f"the configuration asks {lock.mode.value} for {lock.days}: `drkit offsite setup` sets it",
            key,
            str(mode),
            until,
        )
    return str(mode), until


def _control(client: S3Client, bucket: str, key: str) -> str:
    """Put a delete marker on the canary and delete the marker's version: "" when these
    credentials may delete versions, else why the proof cannot be made with them."""
    try:
        marker: Any = client.delete_object(Bucket=bucket, Key=key)
        marker_version = marker.get("VersionId")
        if marker_version:
            client.delete_object(Bucket=bucket, Key=key, VersionId=str(marker_version))
    except S3_FAILURES as exc:
        if error_code(exc) not in CREDENTIAL_CODES:
            raise
        return (
            f"these credentials may not delete versions ({error_code(exc)}), as a writer's should not; "
            "so a refused delete would prove nothing: give object_lock.prove_with credentials that may "
            "(s3:DeleteObject, s3:DeleteObjectVersion on the canary prefix only)"
        )
    return ""


def _exists(client: S3Client, bucket: str, key: str, version: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key, VersionId=version)
    except S3_FAILURES as exc:
        if is_not_found(exc) or error_code(exc) in ("400", "405", "MethodNotAllowed"):
            return False
        raise
    return True


def _remove_expired(client: S3Client, bucket: str, prefix: str, now: datetime) -> None:
    with contextlib.suppress(*S3_FAILURES):
        listing: Any = client.list_object_versions(Bucket=bucket, Prefix=prefix)
        for v in listing.get("Versions", []):
            if v["LastModified"] > now - timedelta(days=2):
                continue
            head: Any = client.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
            until = head.get("ObjectLockRetainUntilDate")
            if until is None or until < now:
                client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
