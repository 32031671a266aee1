"""Verify an objects backup beyond its manifest files (the listings): everything a restore
of it reads. Checks collect results; they never raise.

- `verify`: every pack and part its listings point to is present, then read back (each
  pack decoded once, its zstd frame checked) and every version's content checked against
  its SHA-256: a restore "as of" any time may read any of them.
- `verify --deep`: then each bucket's latest state as the backup saw it is restored into
  a scratch bucket on the service's own S3 server, by the code `drkit restore s3 --to` runs,
  and the result compared with the listing (keys, sizes, and the ETags the source server
  gave where both are plain MD5s); the scratch bucket, every version, is removed after.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from drkit.adapters.s3.client import etag_is_md5
from drkit.adapters.s3.objects import ObjectStore, endpoint_for
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service
from drkit.engines.core.types import NotRead, RestoreOptions
from drkit.engines.core.workspace import Workspace
from drkit.engines.objects.catalog import SCRATCH_PREFIX, VersionRecord, objects_prefix, state_at
from drkit.engines.objects.copy import BucketIO, check_content, restore_order
from drkit.engines.objects.restore import read_listing, restore_locked

READERS = 4


def verify_objects(
    ws: Workspace,
    service: Service,
    manifest: Manifest,
    *,
    deep: bool = False,
    memo: dict[str, str | None] | None = None,
) -> list[CheckResult]:
    """`memo`: versions checked earlier in the same run (backups share most of them), each
    with what was wrong with it (None: intact); each is read once per run."""
    if manifest.encrypted and not ws.codec.identity:
        detail = "encrypted and no age identity here: the listings, packs and parts were not read"
        return [NotRead("objects", Status.WARNING, detail, critical=False)]
    store = ObjectStore(endpoint_for(service))  # contacted only by --deep
    seen = {} if memo is None else memo
    results = [_checked(b, lambda b: _reread(ws, store, manifest, b, seen)) for b in _buckets(manifest)]
    if deep and not any(r.status is Status.FAILED for r in results):
        for bucket in _buckets(manifest):
            results += _restore_and_compare(ws, service, store, manifest, bucket)
    return results


def verify_present(ws: Workspace, service: Service, manifest: Manifest) -> list[CheckResult]:
    """Only that every stored file the listings point to is there (no content read): the
    quick refusal an in-place restore makes before it reads what it restores."""
    store = ObjectStore(endpoint_for(service))  # not contacted: BucketIO wants one
    return [_checked(b, lambda b: _present(ws, store, manifest, b)[1]) for b in _buckets(manifest)]


def _buckets(manifest: Manifest) -> list[str]:
    return [str(b) for b in manifest.details.get("buckets", {})]


def _checked(bucket: str, check: Callable[[str], CheckResult]) -> CheckResult:
    try:
        return check(bucket)
    except DrkitError as exc:
        return CheckResult(f"objects of {bucket}", Status.FAILED, exc.message)


def _present(
    ws: Workspace, store: ObjectStore, manifest: Manifest, bucket: str
) -> tuple[list[VersionRecord], CheckResult]:
    name = f"objects of {bucket}"
    records = [r for r in read_listing(ws, manifest, bucket) if r.stored is not None]
    prefix = objects_prefix(manifest.stack, manifest.service, bucket)
    present = {key[len(prefix) :] for key in ws.repo.list(prefix)}
    needed: set[str] = set()
    for stored in (r.stored for r in records if r.stored is not None):
        needed.update([stored.pack] if stored.pack else stored.parts)
    missing = sorted(needed - present)
    if missing:
        return records, CheckResult(
            name, Status.FAILED, f"{len(missing)} stored files missing, e.g. {missing[0]}"
        )
    return records, CheckResult(
        name, Status.OK, f"{len(records)} versions, all {len(needed)} stored files present"
    )


def _reread(
    ws: Workspace, store: ObjectStore, manifest: Manifest, bucket: str, seen: dict[str, str | None]
) -> CheckResult:
    """Every stored file read back, every version's content against its SHA-256 (packs
    in order, so each is decoded once and shared by the readers)."""
    records, present = _present(ws, store, manifest, bucket)
    if present.status is Status.FAILED:
        return present
    io = BucketIO(ws, store, bucket, objects_prefix(manifest.stack, manifest.service, bucket))
    bad: dict[str, str] = {}  # stored file -> what is wrong with it (a damaged pack: read once)

    def one(record: VersionRecord) -> str | None:
        stored = record.stored
        if stored is None:
            return None
        where = stored.pack or (stored.parts[0] if stored.parts else record.key)
        key = f"{bucket}\0{where}\0{stored.offset}\0{stored.sha256}"
        if key not in seen:
            if where in bad:
                return where
            try:
                check_content(io, record)
                seen[key] = None
            except DrkitError as exc:
                seen[key] = exc.message if where in exc.message else f"{exc.message} (in {where})"
        problem = seen[key]
        if problem is None:
            return None
        bad.setdefault(where, problem)
        return where

    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="objects-check") as pool:
        affected = [w for w in pool.map(one, sorted(records, key=restore_order)) if w is not None]
    if affected:
        first = bad[affected[0]]
        return CheckResult(
            present.name,
            Status.FAILED,
            f"{first}; {len(affected)} version(s) in {len(bad)} damaged stored file(s) cannot be restored",
        )
    packs = {r.stored.pack for r in records if r.stored is not None and r.stored.pack}
    return CheckResult(
        present.name,
        Status.OK,
        f"{len(records)} versions checked ({len(packs)} packs): every SHA-256 matches",
    )


def scratch_bucket(backup_id: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", backup_id.lower()).strip("-")[:40]
    return f"{SCRATCH_PREFIX}{stem}-{secrets.token_hex(4)}"


def _restore_and_compare(
    ws: Workspace, service: Service, store: ObjectStore, manifest: Manifest, bucket: str
) -> list[CheckResult]:
    """Restore one bucket into a new scratch bucket, compare, remove the scratch bucket."""
    scratch = scratch_bucket(manifest.backup_id)
    name = f"restore of {bucket}"
    options = RestoreOptions(backup_id=manifest.backup_id, to=scratch, prefix=bucket)
    results: list[CheckResult] = []
    try:
        restore_locked(ws, service, options, manifest)
        results.append(_compare(store, scratch, state_at(read_listing(ws, manifest, bucket), None), name))
    except DrkitError as exc:
        results.append(CheckResult(name, Status.FAILED, f"into scratch bucket {scratch}: {exc.message}"))
    finally:
        results += _remove(store, scratch)
    return results


def _compare(store: ObjectStore, scratch: str, wanted: dict[str, VersionRecord], name: str) -> CheckResult:
    got = store.current(scratch)
    for key in sorted(set(wanted) | set(got)):
        record, current = wanted.get(key), got.get(key)
        if record is None or current is None:
            side = "in the restore but not in the backup" if record is None else "missing from the restore"
            return CheckResult(name, Status.FAILED, f"{key}: {side}")
        v = record.version
        if current.size != v.size:
            return CheckResult(
                name, Status.FAILED, f"{key}: restored {current.size} bytes, backed up {v.size}"
            )
        if etag_is_md5(current.etag) and etag_is_md5(v.etag) and current.etag != v.etag:
            return CheckResult(
                name, Status.FAILED, f"{key}: restored ETag {current.etag}, source had {v.etag}"
            )
    return CheckResult(
        name,
        Status.OK,
        f"{len(wanted)} objects restored into a scratch bucket and compared with the backup "
        "(keys, sizes, MD5 ETags)",
    )


def _remove(store: ObjectStore, scratch: str) -> list[CheckResult]:
    try:
        store.remove_bucket(scratch)
    except DrkitError as exc:
        return [
            CheckResult(
                "scratch bucket",
                Status.WARNING,
                f"{scratch} is left at {store.endpoint.url} ({exc.message}); remove it with "
                f"`aws s3 rb s3://{scratch} --force` (and its old versions)",
                critical=False,
            )
        ]
    return []
