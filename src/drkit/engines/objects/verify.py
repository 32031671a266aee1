"""Verify an objects backup beyond its manifest files: every pack and part its listings
point to is in the repository, and (deep) every version's content still hashes to its
SHA-256. Checks collect results; they never raise."""

from __future__ import annotations

from drkit.adapters.s3.objects import ObjectStore, endpoint_for
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.objects.catalog import objects_prefix
from drkit.engines.objects.copy import BucketIO, check_content, restore_order
from drkit.engines.objects.restore import read_listing


def verify_objects(
    ws: Workspace, service: Service, manifest: Manifest, *, deep: bool = False
) -> list[CheckResult]:
    results: list[CheckResult] = []
    store = ObjectStore(endpoint_for(service))  # not contacted: BucketIO wants one
    for bucket in manifest.details.get("buckets", {}):
        name = f"objects of {bucket}"
        try:
            results.append(_verify_bucket(ws, store, manifest, bucket, deep))
        except DrkitError as exc:
            results.append(CheckResult(name, Status.FAILED, exc.message))
    return results


def _verify_bucket(
    ws: Workspace, store: ObjectStore, manifest: Manifest, bucket: str, deep: bool
) -> CheckResult:
    name = f"objects of {bucket}"
    records = [r for r in read_listing(ws, manifest, bucket) if r.stored is not None]
    prefix = objects_prefix(manifest.stack, manifest.service, bucket)
    present = {key[len(prefix) :] for key in ws.repo.list(prefix)}
    needed: set[str] = set()
    for stored in (r.stored for r in records if r.stored is not None):
        needed.update([stored.pack] if stored.pack else stored.parts)
    missing = sorted(needed - present)
    if missing:
        return CheckResult(name, Status.FAILED, f"{len(missing)} stored files missing, e.g. {missing[0]}")
    if not deep:
        return CheckResult(
            name, Status.OK, f"{len(records)} versions, all {len(needed)} stored files present"
        )
    io = BucketIO(ws, store, bucket, prefix)
    for record in sorted(records, key=restore_order):
        check_content(io, record)  # raises IntegrityError naming the version
    return CheckResult(name, Status.OK, f"{len(records)} versions re-read: every SHA-256 matches")
