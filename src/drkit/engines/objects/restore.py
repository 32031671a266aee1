"""Restoring objects "as of" a time: per key, the newest version at or before T unless a
delete marker is newer, into the same or another bucket, every object verified by SHA-256.

Every bucket is planned before anything is written, so a refusal (a non-empty target
without `yes`) leaves everything untouched. The buckets written are the ones the
configuration names (`buckets:`, or `--to`), never one holding a drkit repository: the
bucket names in a backup come from the repository, which others may write. With `yes` the
target is made equal to the state at T under the prefix restored: objects replaced, keys
that did not exist at T deleted; the target is versioned first, so both stay as
noncurrent versions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from drkit.adapters.repository.codec import sha256
from drkit.adapters.s3.objects import CurrentObject, ObjectStore, configured_buckets, endpoint_for
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import IntegrityError, UsageError
from drkit.domain.stack import Service, Stack
from drkit.engines.core.layout import backup_dir, lock_name
from drkit.engines.core.restore_choice import choose_for_restore
from drkit.engines.core.types import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace
from drkit.engines.objects.catalog import (
    VersionRecord,
    decode_listing,
    listing_stem,
    objects_prefix,
    state_at,
)
from drkit.engines.objects.copy import BucketIO, restore_order, restore_version, same_content
from drkit.infra import locks

WORKERS = 8
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def choose_backup(ws: Workspace, service: Service, options: RestoreOptions) -> Manifest:
    """The backup named, else the first one taken at or after T (it knew every version up to
    T), else the newest: the one rule of core/choose.py."""
    return choose_for_restore(ws, service, options).manifest


def _selection(buckets: Iterable[str], prefix: str | None) -> list[tuple[str, str]]:
    """(bucket, key prefix) pairs: `--prefix BUCKET[/KEYS]` picks one bucket, any other
    prefix applies to the keys of every bucket."""
    names = list(buckets)
    if not prefix:
        return [(b, "") for b in names]
    head, _, rest = prefix.partition("/")
    if head in names:
        return [(head, rest)]
    return [(b, prefix) for b in names]


@dataclass(frozen=True)
class _BucketPlan:
    io: BucketIO
    target: str
    wanted: dict[str, VersionRecord]
    existing: dict[str, CurrentObject]
    key_prefix: str
    target_exists: bool


def restore(ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult:
    """Plan every bucket first (refusing before anything is written), then restore. (Into a
    container's emptied volume: restore_volume.py.)"""
    if options.to and not BUCKET_NAME.match(options.to):
        raise UsageError(
            f"--to {options.to!r}: objects are restored into a bucket; that is not a bucket name"
        )
    with locks.exclusive(ws.lock_dir, lock_name(service.name), "restore"):
        return restore_locked(ws, service, options, choose_backup(ws, service, options))


def restore_locked(
    ws: Workspace, service: Service, options: RestoreOptions, manifest: Manifest
) -> RestoreResult:
    """The restore itself, from `manifest`, under the service's restore lock."""
    began = ws.clock.monotonic()
    store = ObjectStore(endpoint_for(service))
    chosen = _selection(manifest.details.get("buckets", {}), options.prefix)
    if not chosen:
        raise UsageError(f"backup {manifest.backup_id} holds no bucket under {options.prefix!r}")
    if options.to and len(chosen) > 1:
        raise UsageError(
            f"backup {manifest.backup_id} holds {len(chosen)} buckets; restore one into "
            f"--to {options.to} with --prefix BUCKET[/KEYS]"
        )
    check_targets(ws.stack, service, manifest, [b for b, _ in chosen], options.to)
    plans = [_plan(ws, service, store, manifest, bucket, keys, options) for bucket, keys in chosen]
    moment = options.target_time.isoformat() if options.target_time else f"backup {manifest.backup_id}"
    done = [_execute(plan, moment) for plan in plans]
    return RestoreResult(
        service=service.name,
        backup_id=manifest.backup_id,
        seconds=ws.clock.monotonic() - began,
        detail="; ".join(d for d, _ in done),
        checks=tuple(c for _, c in done),
    )


def repository_buckets(stack: Stack) -> dict[str, str]:
    """Buckets holding a drkit repository of the stack: bucket -> repository name."""
    return {r.bucket: name for name, r in stack.repositories.items() if r.type == "s3" and r.bucket}


def check_targets(stack: Stack, service: Service, m: Manifest, buckets: list[str], to: str | None) -> None:
    """Refuse, before anything is written, a target the configuration does not name: a bucket
    name in the backup that is not one, or not among the service's `buckets`, and any bucket
    that holds one of drkit's repositories (restoring with --yes deletes what the backup
    does not list: the repository itself)."""
    ours = repository_buckets(stack)
    configured = configured_buckets(service)
    for bucket in buckets:
        if not BUCKET_NAME.match(bucket):
            raise IntegrityError(
                f"backup {m.backup_id} names bucket {bucket!r}, which is not a bucket name; refusing"
            )
        if to is None and configured and bucket not in configured:
            raise IntegrityError(
                f"backup {m.backup_id} names bucket {bucket}, which services.{service.name} does not back up "
                f"({', '.join(configured)}); a restore writes only into the buckets the configuration names"
            )
        target = to or bucket
        if target in ours:
            raise UsageError(
                f"bucket {target} holds drkit's repository {ours[target]!r}: a restore never writes into it",
                hint="restore into another bucket with --to",
            )


def read_listing(ws: Workspace, manifest: Manifest, bucket: str) -> list[VersionRecord]:
    """A backup's listing of one bucket, checked against its hash in the manifest."""
    names = [f for f in manifest.files if f.name.startswith(listing_stem(bucket) + ".")]
    if not names:
        raise IntegrityError(f"backup {manifest.backup_id} has no listing of bucket {bucket}")
    stored_file = names[0]
    key = f"{backup_dir(manifest.stack, manifest.service, manifest.backup_id)}/{stored_file.name}"
    try:
        raw = ws.repo.get(key)
    except FileNotFoundError as exc:
        raise IntegrityError(f"{stored_file.name} of backup {manifest.backup_id} is missing") from exc
    if sha256(raw) != stored_file.sha256:
        raise IntegrityError(f"{stored_file.name} of backup {manifest.backup_id} does not match its SHA-256")
    return decode_listing(ws.codec.decode(raw, name=stored_file.name))


def _plan(
    ws: Workspace,
    service: Service,
    store: ObjectStore,
    manifest: Manifest,
    bucket: str,
    key_prefix: str,
    options: RestoreOptions,
) -> _BucketPlan:
    state = state_at(read_listing(ws, manifest, bucket), options.target_time)
    wanted = {k: r for k, r in state.items() if k.startswith(key_prefix)}
    target = options.to or bucket
    exists = store.bucket_exists(target)
    existing = store.current(target, key_prefix) if exists else {}
    if existing and not options.yes:
        under = f" under {key_prefix!r}" if key_prefix else ""
        raise UsageError(
            f"bucket {target} at {store.endpoint.url} is not empty ({len(existing)} objects{under}): "
            "restoring replaces them and deletes keys that did not exist then",
            hint="pass --yes (the bucket is versioned first: replaced objects stay as old versions), "
            "or restore into a new bucket with --to",
        )
    io = BucketIO(ws, store, bucket, objects_prefix(ws.stack.name, service.name, bucket))
    return _BucketPlan(io, target, wanted, existing, key_prefix, exists)


def _execute(plan: _BucketPlan, moment: str) -> tuple[str, CheckResult]:
    store, target = plan.io.store, plan.target
    if not plan.target_exists:
        store.create_bucket(target)
    if store.versioning(target) != "Enabled":
        store.enable_versioning(target)
    write = sorted(
        (
            r
            for k, r in plan.wanted.items()
            if not (k in plan.existing and same_content(r, plan.existing[k].etag, plan.existing[k].size))
        ),
        key=restore_order,
    )
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="restore") as pool:
        list(pool.map(lambda r: restore_version(plan.io, r, target), write))
    extra = sorted(k for k in plan.existing if k not in plan.wanted)
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="restore") as pool:
        list(pool.map(lambda k: store.delete(target, k), extra))
    same = len(plan.wanted) - len(write)
    scope = f"{plan.io.bucket}/{plan.key_prefix}" if plan.key_prefix else plan.io.bucket
    detail = (
        f"{scope} -> {target}: {len(plan.wanted)} objects as of {moment} "
        f"({len(write)} written, {same} already identical, {len(extra)} deleted)"
    )
    check = CheckResult(
        f"objects in {target}",
        Status.OK,
        f"{len(write)} written and verified by SHA-256; {same} identical by MD5 ETag",
    )
    return detail, check
