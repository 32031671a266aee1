"""The bucket side of a repository's storage policy (`drkit offsite setup`): versioning, the
Object Lock default retention, and the lifecycle rules that move bulk data to an archive
tier. An administrator's step, run once with credentials allowed to configure the bucket;
`drkit sync` needs none of these rights.

Lifecycle rules are merged: rules of other IDs stay as they are, drkit's own (`drkit-*`)
are replaced. Every step says what it found and did; a server that does not implement a
call (SeaweedFS answers 501 to lifecycle transitions) is `unsupported`, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drkit.adapters.s3.client import CREDENTIAL_CODES, S3_FAILURES, error_code
from drkit.domain.storage_policy import TIER_TAG, ObjectLock, StoragePolicy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ARCHIVE_RULE = "drkit-archive"
UPLOADS_RULE = "drkit-abort-uploads"
UNSUPPORTED = frozenset({"NotImplemented", "501", "MethodNotAllowed", "405"})
NO_LIFECYCLE = frozenset({"NoSuchLifecycleConfiguration", "404"})


@dataclass(frozen=True)
class SetupStep:
    name: str  # versioning, object lock, lifecycle
    status: str  # ok (already so), applied, would-apply, unsupported, denied, refused
    detail: str

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def lifecycle_rules(policy: StoragePolicy, prefix: str) -> list[dict[str, Any]]:
    """drkit's rules for `policy`: tagged bulk data under `prefix` moves through the
    transitions; unfinished multipart uploads are aborted after 7 days."""
    if not policy.transitions:
        return []
    tag = {"Key": TIER_TAG[0], "Value": TIER_TAG[1]}
    where = f"{prefix}/" if prefix else ""
    archive_filter: dict[str, Any] = {"And": {"Prefix": where, "Tags": [tag]}} if where else {"Tag": tag}
    return [
        {
            "ID": ARCHIVE_RULE,
            "Status": "Enabled",
            "Filter": archive_filter,
            "Transitions": [{"Days": t.days, "StorageClass": t.storage_class} for t in policy.transitions],
        },
        {
            "ID": UPLOADS_RULE,
            "Status": "Enabled",
            "Filter": {"Prefix": where},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
    ]


def setup_bucket(
    client: S3Client, bucket: str, prefix: str, policy: StoragePolicy, *, dry_run: bool
) -> list[SetupStep]:
    steps = [_versioning(client, bucket, dry_run)]
    if policy.object_lock is not None:
        steps.append(_object_lock(client, bucket, policy.object_lock, dry_run))
    if policy.transitions:
        steps.append(_lifecycle(client, bucket, lifecycle_rules(policy, prefix), dry_run))
    return steps


def _refusal(name: str, exc: BaseException, what: str) -> SetupStep:
    code = error_code(exc) or type(exc).__name__
    if code in UNSUPPORTED:
        return SetupStep(name, "unsupported", f"the server does not implement {what} ({code})")
    if code in CREDENTIAL_CODES:
        return SetupStep(
            name,
            "denied",
            f"{what}: denied ({code}); run `drkit offsite setup` with the bucket admin's credentials",
        )
    return SetupStep(name, "refused", f"{what}: {code}: {_message(exc)}")


def _message(exc: BaseException) -> str:
    response: Any = getattr(exc, "response", {})
    return str(response.get("Error", {}).get("Message", "") or exc).strip()


def _versioning(client: S3Client, bucket: str, dry_run: bool) -> SetupStep:
    try:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
        if status == "Enabled":
            return SetupStep("versioning", "ok", "enabled")
        if dry_run:
            return SetupStep(
                "versioning", "would-apply", f"would enable it (now {status or 'never enabled'})"
            )
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    except S3_FAILURES as exc:
        return _refusal("versioning", exc, "bucket versioning")
    return SetupStep("versioning", "applied", "enabled (a deleted or overwritten object keeps its versions)")


def _object_lock(client: S3Client, bucket: str, lock: ObjectLock, dry_run: bool) -> SetupStep:
    want = {"DefaultRetention": {"Mode": lock.mode.value, "Days": lock.days}}
    try:
        found: Any = client.get_object_lock_configuration(Bucket=bucket).get("ObjectLockConfiguration", {})
    except S3_FAILURES as exc:
        if error_code(exc) == "ObjectLockConfigurationNotFoundError":
            return SetupStep(
                "object lock",
                "refused",
                f"bucket {bucket} was created without Object Lock, which can only be turned on when a "
                "bucket is created: create a new bucket with it (`aws s3api create-bucket "
                "--object-lock-enabled-for-bucket`, or `drkit offsite setup --create-bucket`) and point "
                "the repository at it",
            )
        return _refusal("object lock", exc, "reading the Object Lock configuration")
    if found.get("Rule") == want:
        return SetupStep("object lock", "ok", f"default retention {lock.mode.value}, {lock.days} days")
    if dry_run:
        return SetupStep(
            "object lock", "would-apply", f"would set default retention {lock.mode.value}, {lock.days} days"
        )
    document: Any = {"ObjectLockEnabled": "Enabled", "Rule": want}
    try:
        client.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=document)
    except S3_FAILURES as exc:
        return _refusal("object lock", exc, "setting the default retention")
    return SetupStep("object lock", "applied", f"default retention {lock.mode.value}, {lock.days} days")


def _lifecycle(client: S3Client, bucket: str, rules: list[dict[str, Any]], dry_run: bool) -> SetupStep:
    try:
        existing = lifecycle(client, bucket)
    except S3_FAILURES as exc:
        return _refusal("lifecycle", exc, "reading the lifecycle configuration")
    others = [r for r in existing if not str(r.get("ID", "")).startswith("drkit-")]
    mine = [r for r in existing if str(r.get("ID", "")).startswith("drkit-")]
    summary = ", ".join(f"{t['StorageClass']} after {t['Days']}d" for t in rules[0]["Transitions"])
    if _same(mine, rules):
        return SetupStep("lifecycle", "ok", f"tagged bulk data moves to {summary}")
    if dry_run:
        return SetupStep(
            "lifecycle",
            "would-apply",
            f"would move tagged bulk data to {summary} ({len(others)} other rule(s) kept)",
        )
    document: Any = {"Rules": [*others, *rules]}
    try:
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=document)
    except S3_FAILURES as exc:
        step = _refusal("lifecycle", exc, "lifecycle transitions")
        if step.status == "unsupported":
            return SetupStep(
                "lifecycle",
                "unsupported",
                step.detail + ": objects stay in the storage class they were written in",
            )
        return step
    return SetupStep(
        "lifecycle", "applied", f"tagged bulk data moves to {summary} ({len(others)} other rule(s) kept)"
    )


def lifecycle(client: S3Client, bucket: str) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules ([] when it has none)."""
    try:
        found: Any = client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except S3_FAILURES as exc:
        if error_code(exc) in NO_LIFECYCLE:
            return []
        raise
    return list(found.get("Rules", []))


def _same(found: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    def key(rules: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted(
            (str(r.get("ID")), repr(r.get("Transitions") or r.get("AbortIncompleteMultipartUpload")))
            for r in rules
        )

    return key(found) == key(wanted)


def create_locked_bucket(client: S3Client, bucket: str) -> SetupStep:
    """A new bucket with Object Lock (and so versioning) on."""
    try:
        client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    except S3_FAILURES as exc:
        if error_code(exc) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return SetupStep("bucket", "ok", f"{bucket} exists")
        return _refusal("bucket", exc, f"creating {bucket} with Object Lock")
    return SetupStep("bucket", "applied", f"created {bucket} with Object Lock")
