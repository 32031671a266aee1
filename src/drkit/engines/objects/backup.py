"""Object storage (kind `s3`): version-aware incremental backups, restores "as of" a time.

Backup: make sure each bucket keeps versions (and, where the server allows, keeps the
newest 30 noncurrent ones), list every version and delete marker, copy into the
repository only the versions no earlier run copied (objects_catalog), and commit a manifest
whose files are the per-bucket listings. A run with nothing new copies nothing and says
"0 new versions".

Restore "as of" a time is in restore.py; `docs/objects.md` is the operator's guide.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from drkit.adapters.s3.client import CLIENT_VERSION
from drkit.adapters.s3.objects import ObjectStore, ObjectVersion, configured_buckets, endpoint_for
from drkit.domain.backup import BackupKind, Manifest, StoredFile
from drkit.domain.errors import DrkitError, NotFoundError, OperationError
from drkit.domain.stack import Service, Stack
from drkit.engines.core.commit import (
    BackupResult,
    Progress,
    backup_lock,
    clean_incomplete,
    commit_manifest,
    put_small,
    unique_id,
)
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.objects.catalog import (
    SCRATCH_PREFIX,
    Catalog,
    StoredVersion,
    VersionRecord,
    encode_listing,
    fingerprint,
    listing_stem,
    objects_prefix,
)
from drkit.engines.objects.copy import BucketIO, Packer, SmallVersion, fetch_version

KEEP_NONCURRENT = 30
WORKERS = 8
CATALOG_FLUSH = 1000  # copied versions per catalog segment: what an interrupted run keeps


class _Bytes:
    """Bytes copied so far, reported to `progress` from any worker thread."""

    def __init__(self, progress: Progress | None) -> None:
        self.total = 0
        self._lock = threading.Lock()
        self._progress = progress

    def add(self, n: int) -> None:
        with self._lock:
            self.total += n
            if self._progress:
                self._progress(self.total)


def _store(service: Service) -> ObjectStore:
    return ObjectStore(endpoint_for(service))


def backup_buckets(stack: Stack, service: Service, store: ObjectStore) -> tuple[str, ...]:
    """The configured buckets, or every bucket but drkit's own (repository buckets, and
    the scratch buckets of a deep verify running meanwhile)."""
    wanted = configured_buckets(service)
    if wanted:
        for bucket in wanted:
            if not store.bucket_exists(bucket):
                raise OperationError(
                    f"bucket {bucket} of {service.name} does not exist at {store.endpoint.url}"
                )
        return wanted
    ours = {r.bucket for r in stack.repositories.values() if r.type == "s3" and r.bucket}
    found = tuple(b for b in store.buckets() if b not in ours and not b.startswith(SCRATCH_PREFIX))
    if not found:
        raise OperationError(f"{service.name}: no bucket to back up at {store.endpoint.url}")
    return found


def backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """Copy the versions not copied before; the manifest (last) lists every version."""
    store = _store(service)
    with backup_lock(ws, service.name):
        removed = clean_incomplete(ws, service.name)
        started = ws.clock.now()
        backup_id = unique_id(ws, service.name, BackupKind.OBJECTS, started)
        directory = backup_dir(ws.stack.name, service.name, backup_id)
        counter = _Bytes(progress)
        warnings: list[str] = []
        done: dict[str, _BucketBackup] = {}
        for bucket in backup_buckets(ws.stack, service, store):
            warnings.extend(_prepare_bucket(store, bucket))
            io = BucketIO(ws, store, bucket, objects_prefix(ws.stack.name, service.name, bucket))
            done[bucket] = _backup_bucket(io, service.name, directory, backup_id, counter)
        manifest = Manifest(
            backup_id=backup_id,
            stack=ws.stack.name,
            service=service.name,
            kind=BackupKind.OBJECTS,
            started_at=started,
            finished_at=ws.clock.now(),
            files=tuple(b.listing for b in done.values()),
            tool_versions={"client": CLIENT_VERSION, "server": store.server()},
            compression=f"zstd-{ws.codec.level}",
            encrypted=ws.codec.encrypted,
            details=_details(ws, service, store, done, warnings),
        )
        commit_manifest(ws, manifest)
        return BackupResult(manifest, removed)


def _prepare_bucket(store: ObjectStore, bucket: str) -> list[str]:
    if store.versioning(bucket) != "Enabled":
        store.enable_versioning(bucket)
    warning = store.keep_noncurrent(bucket, KEEP_NONCURRENT)
    return [warning] if warning else []


@dataclass(frozen=True)
class _BucketBackup:
    listing: StoredFile
    versions: int
    delete_markers: int
    keys: int
    new_versions: int
    new_bytes: int
    vanished: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "listing": self.listing.name,
            "versions": self.versions,
            "delete_markers": self.delete_markers,
            "keys": self.keys,
            "new_versions": self.new_versions,
            "new_bytes": self.new_bytes,
            "vanished": self.vanished,
        }


def _backup_bucket(io: BucketIO, service: str, directory: str, run_id: str, counter: _Bytes) -> _BucketBackup:
    catalog = Catalog(io.ws, service, io.bucket, run_id).load()
    listing = list(io.store.versions(io.bucket))
    todo = [v for v in listing if not v.delete_marker and fingerprint(v) not in catalog.known]
    before = counter.total
    copied, vanished = _copy_all(io, todo, catalog, run_id, counter.add)
    records = []
    for v in listing:
        stored = None if v.delete_marker else catalog.known.get(fingerprint(v))
        if v.delete_marker or stored is not None:
            records.append(VersionRecord(v, stored))
    catalog.compact()
    stored_listing = put_small(io.ws, directory, listing_stem(io.bucket), encode_listing(records))
    return _BucketBackup(
        listing=stored_listing,
        versions=sum(1 for r in records if not r.version.delete_marker),
        delete_markers=sum(1 for r in records if r.version.delete_marker),
        keys=len({r.key for r in records}),
        new_versions=copied,
        new_bytes=counter.total - before,
        vanished=vanished,
    )


def _copy_all(
    io: BucketIO, todo: list[ObjectVersion], catalog: Catalog, run_id: str, progress: Callable[[int], None]
) -> tuple[int, int]:
    """Copy versions in parallel. The catalog records them as they are stored (big ones every
    CATALOG_FLUSH versions, small ones with their pack), and on failure too, so the next
    run goes on from there. Returns (copied, vanished)."""
    packer = Packer(io, catalog, run_id)
    pending: dict[str, StoredVersion] = {}
    copied = vanished = 0
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="objects") as pool:
        futures: dict[Future[StoredVersion | SmallVersion], ObjectVersion] = {
            pool.submit(fetch_version, io, v, progress): v for v in todo
        }
        try:
            for fut in as_completed(futures):
                try:
                    result = fut.result()
                except NotFoundError:  # deleted for good since the listing: nothing to keep
                    vanished += 1
                    continue
                copied += 1
                if isinstance(result, SmallVersion):
                    packer.add(fingerprint(futures[fut]), result)
                    continue
                pending[fingerprint(futures[fut])] = result
                if len(pending) >= CATALOG_FLUSH:
                    catalog.add(pending)
                    pending = {}
        except BaseException:
            for fut in futures:
                fut.cancel()
            with contextlib.suppress(DrkitError):  # if the repository failed: copied again next run
                packer.flush()
                catalog.add(pending)
            raise
    packer.flush()
    catalog.add(pending)
    return copied, vanished


def _details(
    ws: Workspace, service: Service, store: ObjectStore, done: dict[str, _BucketBackup], warnings: list[str]
) -> dict[str, Any]:
    new = sum(b.new_versions for b in done.values())
    versions = sum(b.versions for b in done.values())
    markers = sum(b.delete_markers for b in done.values())
    copied = sum(b.new_bytes for b in done.values())
    summary = (
        f"{new} new version{'s' if new != 1 else ''} copied ({copied} bytes); "
        f"{versions} versions and {markers} delete markers in {len(done)} bucket(s)"
    )
    return {
        "summary": summary,
        "new_versions": new,
        "endpoint": store.endpoint.url,
        "buckets": {name: b.to_dict() for name, b in done.items()},
        "warnings": warnings,
        "objects_dir": f"{ws.stack.name}/{service.name}/objects/<bucket>/",
        "format": (
            "each line of BUCKET.versions.jsonl is a version or a delete marker; a version's "
            "content is in objects/BUCKET/<parts> (cat the parts | zstd -d)"
        ),
    }
