"""Object versions in the repository that no kept backup lists any more (after `drkit prune`
removed the backups that did): a mark and sweep per bucket.

Marked: every pack and part a kept backup's listing refers to. A pack goes only when none of
its members is listed. The catalog (which versions are copied) is rewritten first without
the versions whose storage goes, then the old catalog segments are deleted, then the
storage: a kill at any point leaves a catalog that only names stored versions (the next
backup copies again a version that is still in the bucket) and, at worst, unreferenced
files that the next sweep removes.

Only buckets some kept backup lists are swept, and nothing is swept while an incomplete
backup of the service is guarded by a live lease (another host's backup may be copying).
A listing that cannot be read stops the sweep before anything goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from drkit.domain.backup import BackupKind, Manifest
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.workspace import Workspace
from drkit.engines.objects.catalog import Catalog, StoredVersion, objects_prefix
from drkit.engines.objects.restore import read_listing

STORAGE = ("packs/", "blobs/")


@dataclass(frozen=True)
class BucketSweep:
    bucket: str
    versions: int  # catalog entries whose storage goes
    files: tuple[str, ...]  # stored files (under the bucket's objects directory) that go
    kept_files: int


def plan_sweep(
    ws: Workspace, service: str, kept: list[Manifest], *, live_check: bool = True
) -> list[BucketSweep] | None:
    """What goes, per bucket; None when a live backup of the service forbids sweeping (an
    incomplete one left after `clean_incomplete`: its lease is live)."""
    if live_check and list_backups(ws.repo, ws.stack.name, service).incomplete:
        return None
    listed = [m for m in kept if m.kind is BackupKind.OBJECTS]
    buckets = sorted({b for m in listed for b in m.details.get("buckets", {})})
    return [_bucket(ws, service, bucket, listed) for bucket in buckets]


def _storage(stored: StoredVersion) -> set[str]:
    return {stored.pack} if stored.pack is not None else set(stored.parts)


def _bucket(ws: Workspace, service: str, bucket: str, listed: list[Manifest]) -> BucketSweep:
    marked: set[str] = set()
    for m in listed:
        if bucket in m.details.get("buckets", {}):
            for record in read_listing(ws, m, bucket):
                if record.stored is not None:
                    marked |= _storage(record.stored)
    prefix = objects_prefix(ws.stack.name, service, bucket)
    stored = [k[len(prefix) :] for part in STORAGE for k in ws.repo.list(prefix + part)]
    catalog = Catalog(ws, service, bucket, "sweep").load()
    files = tuple(sorted(name for name in stored if name not in marked))
    going = sum(1 for s in catalog.known.values() if _storage(s) & set(files))
    return BucketSweep(bucket, going, files, len(stored) - len(files))


def sweep(ws: Workspace, service: str, plan: list[BucketSweep], run_id: str) -> None:
    """Carry out `plan_sweep`'s plan (under the service's lock)."""
    for b in plan:
        if not b.files and not b.versions:
            continue
        catalog = Catalog(ws, service, b.bucket, run_id).load()
        gone = set(b.files)
        catalog.replace_with({fp: s for fp, s in catalog.known.items() if not _storage(s) & gone}, "swept")
        prefix = objects_prefix(ws.stack.name, service, b.bucket)
        for name in b.files:
            ws.repo.delete(prefix + name)
