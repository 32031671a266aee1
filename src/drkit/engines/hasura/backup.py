"""Hasura backups: the metadata (tracked tables, relationships, permissions, actions, ...),
`export_metadata` version 2, stored as `metadata.json` (zstd, age) with the manifest written
last. Hasura keeps it in PostgreSQL (hdb_catalog); restoring it is `restore.py`."""

from __future__ import annotations

import json
from typing import Any

from drkit.adapters.hasura import HasuraClient
from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import UsageError
from drkit.domain.stack import Service
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

METADATA_FILE = "metadata.json"


def client_for(service: Service) -> HasuraClient:
    if not service.url:
        raise UsageError(f"service {service.name} (hasura) needs a url, like http://127.0.0.1:8080")
    return HasuraClient(service.url, admin_secret=service.password)


def canonical(metadata: dict[str, Any]) -> bytes:
    """One byte form per metadata, so equal metadata hash equal."""
    return json.dumps(metadata, sort_keys=True, indent=2).encode()


def backup(ws: Workspace, service: Service, *, progress: Progress | None = None) -> BackupResult:
    """export_metadata v2 -> metadata.json + manifest (last)."""
    with backup_lock(ws, service.name), client_for(service) as hasura:
        removed = clean_incomplete(ws, service.name)
        started = ws.clock.now()
        exported = hasura.export_metadata()
        version = hasura.version()
        raw = canonical(exported.metadata)
        backup_id = unique_id(ws, service.name, BackupKind.METADATA, started)
        stored = put_small(ws, backup_dir(ws.stack.name, service.name, backup_id), METADATA_FILE, raw)
        if progress:
            progress(len(raw))
        sources = exported.metadata.get("sources", [])
        manifest = Manifest(
            backup_id=backup_id,
            stack=ws.stack.name,
            service=service.name,
            kind=BackupKind.METADATA,
            started_at=started,
            finished_at=ws.clock.now(),
            files=(stored,),
            tool_versions={"hasura": version},
            compression=f"zstd-{ws.codec.level}",
            encrypted=ws.codec.encrypted,
            details={
                "resource_version": exported.resource_version,
                "metadata_version": exported.metadata.get("version"),
                "metadata_sha256": sha256(raw),
                "sources": [s.get("name") for s in sources if isinstance(s, dict)],
                "tables": sum(len(s.get("tables", [])) for s in sources if isinstance(s, dict)),
                "format": "export_metadata v2 `metadata` object; restore with replace_metadata v2",
            },
        )
        commit_manifest(ws, manifest)
        return BackupResult(manifest, removed)
