"""What every service's backup shares: ids, parts, the commit point, leftovers of killed runs.

A backup is written file by file under its directory; the manifest goes last (the commit
point). A run killed midway leaves files without a manifest: they never list as a backup,
and the next run of the same service (holding its lock) removes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import BackupKind, Manifest, StoredFile, new_backup_id
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import backup_dir, backups_prefix, manifest_key
from drkit.engines.core.workspace import Workspace

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    removed_incomplete: tuple[str, ...]

    @property
    def seconds(self) -> float:
        return (self.manifest.finished_at - self.manifest.started_at).total_seconds()


def unique_id(
    ws: Workspace, service: str, kind: BackupKind, now: datetime, *, label: str | None = None
) -> str:
    """The one backup-id maker: `20261125T020000Z-base`, sorted by time, `-2`, `-3`... when
    taken. `label` replaces the kind's name in the id (a MeiliSearch snapshot is a dump kind)."""
    base = new_backup_id(kind, now)
    if label is not None:
        base = base.removesuffix(kind.value) + label
    taken = {key.split("/")[3] for key in ws.repo.list(backups_prefix(ws.stack.name, service))}
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def clean_incomplete(ws: Workspace, service: str) -> tuple[str, ...]:
    """Remove leftovers of killed runs. Only called while holding the service's backup lock."""
    listing = list_backups(ws.repo, ws.stack.name, service)
    for backup_id in listing.incomplete:
        ws.repo.delete_tree(backup_dir(ws.stack.name, service, backup_id))
    return listing.incomplete


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
    key = manifest_key(manifest.stack, manifest.service, manifest.backup_id)
    ws.repo.put(key, manifest.to_json(), overwrite=False)
