"""What every service's backup shares: ids, parts, the commit point, leftovers of killed runs.

A backup is written file by file under its directory; the manifest goes last (the commit
point). A run killed midway leaves files without a manifest: they never list as a backup,
and the next run of the same service removes them, unless another run may still be
writing them: its lease (engines/core/lease.py) says so, even from another host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import BackupKind, Manifest, StoredFile, backup_id_order, new_backup_id
from drkit.domain.errors import OperationError
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import backup_dir, backups_prefix, lease_key, lock_name, manifest_key
from drkit.engines.core.lease import LeaseKeeper, host_id, stale_reason
from drkit.engines.core.workspace import Workspace
from drkit.infra import locks

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    removed_incomplete: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return (self.manifest.finished_at - self.manifest.started_at).total_seconds()


@contextmanager
def backup_lock(ws: Workspace, service: str) -> Iterator[LeaseKeeper]:
    """Hold the service's lock for a backup. Under it, `unique_id` claims the backup's lease
    (renewed until the lock is left) and `commit_manifest` confirms it is still ours."""
    with locks.exclusive(ws.lock_dir, lock_name(service), "backup"):
        keeper = LeaseKeeper(ws.repo, ws.clock, host=host_id(ws.stack.host_id))
        ws.leases[service] = keeper
        try:
            yield keeper
        finally:
            del ws.leases[service]
            keeper.release()


def unique_id(
    ws: Workspace, service: str, kind: BackupKind, now: datetime, *, label: str | None = None
) -> str:
    """The one backup-id maker: `20261125T020000Z-base`, sorted by time, `-2`, `-3`... when
    taken (compare them with `backup_id_order`). `label` replaces the kind's name in the id
    (a MeiliSearch snapshot is a dump kind). The id is claimed by creating its lease, before
    any part is written: two hosts never write one id, and no cleaner removes it while the
    lease is renewed."""
    keeper = ws.leases.get(service)
    if keeper is None:
        raise OperationError(f"a backup id of {service} is only made under backup_lock()")
    base = new_backup_id(kind, now)
    if label is not None:
        base = base.removesuffix(kind.value) + label
    taken = {key.split("/")[3] for key in ws.repo.list(backups_prefix(ws.stack.name, service))}
    # Never below an id of this second that is still there: a pruned `S-base` must not be
    # made again after `S-base-2`, or ids stop sorting by time (object_gc relies on it).
    n = 1 + max((backup_id_order(t)[1] for t in taken if backup_id_order(t)[0] == base), default=0)
    candidate = base if n == 1 else f"{base}-{n}"
    while candidate in taken or not _claim(ws, keeper, service, candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _claim(ws: Workspace, keeper: LeaseKeeper, service: str, backup_id: str) -> bool:
    if not keeper.claim(lease_key(ws.stack.name, service, backup_id), backup_id):
        return False
    if ws.repo.exists(manifest_key(ws.stack.name, service, backup_id)):
        keeper.withdraw()  # committed and released between our listing and our claim
        return False
    keeper.keep()
    return True


def clean_incomplete(ws: Workspace, service: str) -> tuple[str, ...]:
    """Remove leftovers of killed runs: incomplete backups that no live lease protects.
    Called under the service's lock; other hosts' runs are known by their leases only."""
    listing = list_backups(ws.repo, ws.stack.name, service)
    host, now = host_id(ws.stack.host_id), ws.clock.now()
    removed: list[str] = []
    for backup_id in listing.incomplete:
        if stale_reason(ws.repo, lease_key(ws.stack.name, service, backup_id), host=host, now=now):
            ws.repo.delete_tree(backup_dir(ws.stack.name, service, backup_id))
            removed.append(backup_id)
    return tuple(removed)


def part_sink(ws: Workspace, directory: str, stem: str, ext: str = "") -> Callable[[int, bytes], StoredFile]:
    """Parts are named so that a shell glob lists them in order: base.00000.tar.zst, ..."""

    def sink(index: int, raw: bytes) -> StoredFile:
        stored = ws.codec.encode(raw)
        name = f"{stem}.{index:05d}{ext}{ws.codec.suffix}"
        ws.repo.put(f"{directory}/{name}", stored, overwrite=False)
        return StoredFile(name, len(stored), sha256(stored), len(raw))

    return sink


def put_small(ws: Workspace, directory: str, stem: str, raw: bytes) -> StoredFile:
    stored = ws.codec.encode(raw)
    name = f"{stem}{ws.codec.suffix}"
    ws.repo.put(f"{directory}/{name}", stored, overwrite=False)
    return StoredFile(name, len(stored), sha256(stored), len(raw))


def commit_manifest(ws: Workspace, manifest: Manifest) -> None:
    """Write the manifest: the commit point. Until this returns, the backup does not exist.
    With a sign_key, the workspace's repository writes its signature first (core/signing.py)."""
    keeper = ws.leases.get(manifest.service)
    if keeper is not None:
        keeper.confirm()
    require_stored(ws, manifest)
    key = manifest_key(manifest.stack, manifest.service, manifest.backup_id)
    ws.repo.put(key, manifest.to_json(), overwrite=False)


def require_stored(ws: Workspace, manifest: Manifest) -> None:
    """Every file the manifest names is stored, with its size: a backup whose files another
    host's cleanup removed (its lease lost, clocks apart) is never committed. One listing."""
    directory = backup_dir(manifest.stack, manifest.service, manifest.backup_id)
    stored = {e.key: e.size for e in ws.repo.entries(f"{directory}/")}
    for f in manifest.files:
        size = stored.get(f"{directory}/{f.name}")
        if size != f.size:
            state = "is missing" if size is None else f"has {size} bytes, not {f.size}"
            raise OperationError(
                f"{f.name} of {manifest.backup_id} {state} in {ws.repo.location}; not committing the backup"
            )
