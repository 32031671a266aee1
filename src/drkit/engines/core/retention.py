"""Removing one backup, manifest first (from then on the backup does not exist, and what a
crash leaves behind is an incomplete backup that the next backup or prune of the service
removes). Which backups go is `drkit prune`'s decision alone (engines/ops/retention_policy.py):
no backup removes another."""

from __future__ import annotations

from drkit.engines.core.layout import backup_dir, manifest_key
from drkit.engines.core.workspace import Workspace


def delete_backup(ws: Workspace, service: str, backup_id: str) -> None:
    """The manifest first: from then on the backup does not exist."""
    ws.repo.delete(manifest_key(ws.stack.name, service, backup_id))
    ws.repo.delete_tree(backup_dir(ws.stack.name, service, backup_id))
