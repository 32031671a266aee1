"""Object versions in the repository that no kept backup lists any more (after `drkit prune`
removed the backups that did): a mark and sweep per bucket.

Marked: every pack and part a kept backup's listing refers to. A pack goes only when none of
its members is listed. The catalog (which versions are copied) is rewritten first without
the versions whose storage goes, then the old catalog segments are deleted, then the
storage: a kill at any point leaves a catalog that only names stored versions (the next
backup copies again a version that is still in the bucket) and, at worst, unreferenced
files that the next sweep removes.

Only buckets some kept backup lists are swept; nothing is swept while an incomplete backup
of the service is guarded by a live lease (another host's backup may be copying), nor in a
bucket whose catalog has segments of a run newer than the newest backup (an interrupted
backup's copies, which the next backup lists instead of copying them again).
A listing that cannot be read stops the sweep before anything goes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from drkit.domain.backup import BackupKind, Manifest, backup_id_order
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
    waiting: bool = False  # an unfinished backup's copies are not listed yet: swept after the next backup


# A catalog segment is named after the run that wrote it: `<backup id>-<NNNNN>`, `-compact`, `-swept-<hex>`.
SEGMENT_RE = re.compile(r"^(?P<run>.+?)-(?:\d{5}|compact|swept-[0-9a-f]{8})\.jsonl")


def plan_sweep(
    ws: Workspace, service: str, kept: list[Manifest], *, live_check: bool = True
) -> list[BucketSweep] | None:
    """What goes, per bucket; None when a live backup of the service forbids sweeping (an
    incomplete one left after `clean_incomplete`: its lease is live)."""
    if live_check and list_backups(ws.repo, ws.stack.name, service).incomplete:
        return None
    listed = [m for m in kept if m.kind is BackupKind.OBJECTS]
    buckets = sorted({b for m in listed for b in m.details.get("buckets", {})})
    newest = max((m.backup_id for m in listed), key=backup_id_order, default="")
    return [_bucket(ws, service, bucket, listed, newest) for bucket in buckets]


def sweep_run_id(kept: list[Manifest]) -> str:
    """The run a sweep writes its catalog segment as: the newest kept backup's, so it never
    looks like a run newer than that backup (see `waiting`)."""
    return max(
        (m.backup_id for m in kept if m.kind is BackupKind.OBJECTS), key=backup_id_order, default="sweep"
    )


def _newer_run(segment: str, newest: str) -> bool:
    match = SEGMENT_RE.match(segment)
    # unknown names: assume a live run
    return match is None or backup_id_order(match.group("run")) > backup_id_order(newest)


def _storage(stored: StoredVersion) -> set[str]:
    return {stored.pack} if stored.pack is not None else set(stored.parts)


def _bucket(ws: Workspace, service: str, bucket: str, listed: list[Manifest], newest: str) -> BucketSweep:
    prefix = objects_prefix(ws.stack.name, service, bucket)
    stored = [k[len(prefix) :] for part in STORAGE for k in ws.repo.list(prefix + part)]
    segments = [k.rsplit("/", 1)[-1] for k in ws.repo.list(prefix + "catalog/")]
    if any(_newer_run(name, newest) for name in segments):  # a later run copied, unlisted yet
        return BucketSweep(bucket, 0, (), len(stored), waiting=True)
    marked: set[str] = set()
    for m in listed:
        if bucket in m.details.get("buckets", {}):
            for record in read_listing(ws, m, bucket):
                if record.stored is not None:
                    marked |= _storage(record.stored)
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
        survivors = {fp: s for fp, s in catalog.known.items() if not _storage(s) & gone}
        catalog.replace_with(survivors, f"swept-{uuid.uuid4().hex[:8]}")
        prefix = objects_prefix(ws.stack.name, service, b.bucket)
        for name in b.files:
            ws.repo.delete(prefix + name)
