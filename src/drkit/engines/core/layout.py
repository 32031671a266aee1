"""Where things live in a repository (ARCHITECTURE.md, "Repository layout")."""

from __future__ import annotations

from drkit.domain.backup import MANIFEST_NAME


def backups_prefix(stack: str, service: str) -> str:
    return f"{stack}/{service}/backups/"


def backup_dir(stack: str, service: str, backup_id: str) -> str:
    return f"{stack}/{service}/backups/{backup_id}"


def manifest_key(stack: str, service: str, backup_id: str) -> str:
    return f"{backup_dir(stack, service, backup_id)}/{MANIFEST_NAME}"


def wal_prefix(stack: str, service: str) -> str:
    return f"{stack}/{service}/wal/"


def lock_name(service: str, operation: str) -> str:
    return f"{service}-{operation}"


def journals_prefix(stack: str) -> str:
    return f"{stack}/journals/"


def journal_key(stack: str, run_id: str) -> str:
    return f"{journals_prefix(stack)}{run_id}.json"
