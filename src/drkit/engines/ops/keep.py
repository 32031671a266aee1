"""`drkit backups keep`: pin a backup so that prune never removes it (engines/core/pins.py),
and the retention fact that carries a pin into prune's decision."""

from __future__ import annotations

from datetime import datetime

from drkit.domain.backup import Manifest
from drkit.domain.errors import UsageError
from drkit.engines.core.catalog import find_backup
from drkit.engines.core.pins import Pin, pin, read_pin, release
from drkit.engines.core.workspace import Workspace


def pinned_reason(ws: Workspace, manifest: Manifest) -> str | None:
    """Why the backup's pin keeps it, or None when it has none (or it expired)."""
    found = read_pin(ws, manifest.service, manifest.backup_id)
    if found is None or not found.holds(ws.clock.now()):
        return None
    return f"pinned: {found.describe()}"


def keep_backup(
    ws: Workspace, backup_id: str, *, reason: str, until: datetime | None = None
) -> tuple[Manifest, Pin]:
    manifest = find_backup(ws.repo, ws.stack.name, sorted(ws.stack.services), backup_id)
    if until is not None and until <= ws.clock.now():
        raise UsageError(f"--until {until.isoformat()} is not in the future")
    return manifest, pin(ws, manifest, reason=reason, until=until)


def release_backup(ws: Workspace, backup_id: str) -> tuple[Manifest, Pin | None]:
    manifest = find_backup(ws.repo, ws.stack.name, sorted(ws.stack.services), backup_id)
    return manifest, release(ws, manifest)
