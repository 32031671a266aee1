"""Removing old backups of one service: keep the newest N of a sort, never one that a
stack-wide set refers to, manifest first (from then on the backup does not exist, and what a
crash leaves behind is an incomplete backup that the next backup of the service removes)."""

from __future__ import annotations

from collections.abc import Callable

from drkit.domain.backup import Manifest
from drkit.domain.errors import RepositoryError
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import backup_dir, manifest_key
from drkit.engines.core.set_refs import list_sets
from drkit.engines.core.workspace import Workspace


def superseded(
    ws: Workspace, service: str, keep: int, of_sort: Callable[[Manifest], bool]
) -> tuple[str, ...]:
    """Complete backups of this sort beyond the newest `keep`, except those a set uses.
    When the sets cannot be read, nothing is superseded: better keep too much than break one."""
    newest_first = sorted(
        (m for m in list_backups(ws.repo, ws.stack.name, service).complete if of_sort(m)),
        key=lambda m: (m.finished_at, m.backup_id),
        reverse=True,
    )
    try:
        in_sets = {s.backups.get(service) for s in list_sets(ws)}
    except (ValueError, KeyError, RepositoryError):
        return ()
    return tuple(m.backup_id for m in newest_first[keep:] if m.backup_id not in in_sets)


def keep_last(ws: Workspace, service: str, keep: int, of_sort: Callable[[Manifest], bool]) -> tuple[str, ...]:
    """Delete what `superseded` names; returns the ids deleted."""
    doomed = superseded(ws, service, keep, of_sort)
    for backup_id in doomed:
        delete_backup(ws, service, backup_id)
    return doomed


def delete_backup(ws: Workspace, service: str, backup_id: str) -> None:
    """The manifest first: from then on the backup does not exist."""
    ws.repo.delete(manifest_key(ws.stack.name, service, backup_id))
    ws.repo.delete_tree(backup_dir(ws.stack.name, service, backup_id))
