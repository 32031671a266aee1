"""Where things live in a repository (ARCHITECTURE.md, "Repository layout")."""

from __future__ import annotations

from drkit.domain.backup import MANIFEST_NAME

LEASE_NAME = "lease.json"
VERIFIED_NAME = "verified.json"
KEEP_NAME = "keep.json"


def backups_prefix(stack: str, service: str) -> str:
    return f"{stack}/{service}/backups/"


def backup_dir(stack: str, service: str, backup_id: str) -> str:
    return f"{stack}/{service}/backups/{backup_id}"


def manifest_key(stack: str, service: str, backup_id: str) -> str:
    return f"{backup_dir(stack, service, backup_id)}/{MANIFEST_NAME}"


def wal_prefix(stack: str, service: str) -> str:
    return f"{stack}/{service}/wal/"


def lease_key(stack: str, service: str, backup_id: str) -> str:
    """Who is writing a backup in progress, until when (engines/core/lease.py)."""
    return f"{backup_dir(stack, service, backup_id)}/{LEASE_NAME}"


def verified_key(stack: str, service: str, backup_id: str) -> str:
    """The last successful `drkit verify` of a backup (when, how deep); retention keeps the
    newest verified backup (engines/ops/retention_policy.py)."""
    return f"{backup_dir(stack, service, backup_id)}/{VERIFIED_NAME}"


def keep_key(stack: str, service: str, backup_id: str) -> str:
    """A pin on a backup (`drkit backups keep`): prune never removes it while the pin holds
    (engines/core/pins.py)."""
    return f"{backup_dir(stack, service, backup_id)}/{KEEP_NAME}"


def lock_name(service: str) -> str:
    """The one host-local lock of a service: its backup, restore, prune and sync take it."""
    return service


def journals_prefix(stack: str) -> str:
    return f"{stack}/journals/"


def journal_key(stack: str, run_id: str) -> str:
    return f"{journals_prefix(stack)}{run_id}.json"
