"""What drkit asks of S3 when it writes an object to a repository with a storage policy: its
storage class, and the tag that lets the lifecycle rule move it to an archive tier.

Only bulk data goes to an archive tier: compressed or encrypted files (`.zst`, `.age`) that a
restore reads once. What drkit reads to decide anything (manifests, sets, journals, the tar
index, sidecars, signatures, the objects catalogs and listings `*.jsonl.zst`) stays readable
at once, so listing backups, planning a restore and `drkit verify --repo` never wait on the
archive. Writing tags needs s3:PutObjectTagging besides s3:PutObject.
"""

from __future__ import annotations

from typing import Any

from drkit.domain.storage_policy import TIER_TAG, StoragePolicy

BULK_SUFFIXES = (".zst", ".age")


def archivable(key: str) -> bool:
    """True for bulk data a lifecycle rule may move to an archive tier."""
    name = key.rsplit("/", 1)[-1]
    if "/catalog/" in f"/{key}" or ".jsonl" in name or name.startswith("."):
        return False
    return name.endswith(BULK_SUFFIXES)


def put_args(policy: StoragePolicy, key: str) -> dict[str, Any]:
    """Extra PutObject / CreateMultipartUpload parameters for `key`."""
    args: dict[str, Any] = {}
    if policy.storage_class:
        args["StorageClass"] = policy.storage_class
    if policy.transitions and archivable(key):
        args["Tagging"] = f"{TIER_TAG[0]}={TIER_TAG[1]}"
    return args
