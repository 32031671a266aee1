"""Backups and their manifests: what was stored, with what, and the hash of every file."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from drkit.domain.errors import IntegrityError, UnsupportedFormatError


class BackupKind(StrEnum):
    BASE = "base"
    LOGICAL = "logical"
    RDB = "rdb"
    OBJECTS = "objects"
    DUMP = "dump"
    METADATA = "metadata"


@dataclass(frozen=True)
class StoredFile:
    """One file of a backup as stored: name in the backup directory, stored size, SHA-256."""

    name: str
    size: int
    sha256: str
    raw_size: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredFile:
        return cls(
            name=str(data["name"]),
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            raw_size=int(data.get("raw_size", 0)),
        )


@dataclass(frozen=True)
class PostgresInfo:
    """What a PostgreSQL base backup needs for recovery."""

    start_lsn: str
    stop_lsn: str
    timeline: int
    wal_segment_size: int
    server_version: int
    system_identifier: str
    row_counts: dict[str, int] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    # An incremental backup: how it was made ("native": pg_basebackup --incremental, 17+;
    # "delta": drkit's changed pages, below 17), its parent's id, and the chain it completes
    # (every backup it needs, the full one first, its parent last). None/() for a full backup.
    incremental: str | None = None
    parent: str | None = None
    chain: tuple[str, ...] = ()

    @property
    def is_incremental(self) -> bool:
        return self.parent is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PostgresInfo:
        parent = data.get("parent")
        return cls(
            start_lsn=str(data["start_lsn"]),
            stop_lsn=str(data["stop_lsn"]),
            timeline=int(data["timeline"]),
            wal_segment_size=int(data["wal_segment_size"]),
            server_version=int(data["server_version"]),
            system_identifier=str(data["system_identifier"]),
            row_counts={str(k): int(v) for k, v in data.get("row_counts", {}).items()},
            databases=[str(d) for d in data.get("databases", [])],
            incremental=str(data["incremental"]) if data.get("incremental") else None,
            parent=str(parent) if parent else None,
            chain=tuple(str(c) for c in data.get("chain", ())),
        )


MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1  # what a backup's manifest is written as
# An incremental backup's manifest: a drkit that reads only format 1 refuses it by name rather
# than restore it as if it were a whole base backup (which PostgreSQL cannot start).
INCREMENTAL_FORMAT = 2
NEWEST_FORMAT = INCREMENTAL_FORMAT


@dataclass(frozen=True)
class Manifest:
    """The commit point of a backup: written last; a backup without one does not exist."""

    backup_id: str
    stack: str
    service: str
    kind: BackupKind
    started_at: datetime
    finished_at: datetime
    files: tuple[StoredFile, ...]
    tool_versions: dict[str, str]
    compression: str = "zstd"
    encrypted: bool = False
    postgres: PostgresInfo | None = None
    details: dict[str, Any] = field(default_factory=dict)
    format: int = MANIFEST_FORMAT

    @property
    def stored_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def raw_bytes(self) -> int:
        return sum(f.raw_size for f in self.files)

    @property
    def parent_id(self) -> str | None:
        """The backup an incremental PostgreSQL base backup needs restored first; else None."""
        return self.postgres.parent if self.postgres is not None else None

    def file(self, name: str) -> StoredFile:
        for stored in self.files:
            if stored.name == name:
                return stored
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        data["files"] = [asdict(f) for f in self.files]
        if self.postgres is not None and not self.postgres.is_incremental:
            for key in ("incremental", "parent", "chain"):  # a full backup's manifest as before
                data["postgres"].pop(key, None)
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    def require_postgres(self) -> PostgresInfo:
        """The PostgreSQL facts of a base backup; an error naming the backup otherwise."""
        if self.postgres is None:
            raise IntegrityError(
                f"{self.backup_id} is not a PostgreSQL base backup (its manifest has no postgres part)"
            )
        return self.postgres

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        pg = data.get("postgres")
        version = int(data.get("format", MANIFEST_FORMAT))
        if version > NEWEST_FORMAT:
            raise UnsupportedFormatError(
                f"the manifest of {data.get('backup_id', '?')} has format {version}, newer than this drkit "
                f"reads ({NEWEST_FORMAT}): restore it with the drkit that wrote it, or upgrade"
            )
        return cls(
            backup_id=str(data["backup_id"]),
            stack=str(data["stack"]),
            service=str(data["service"]),
            kind=BackupKind(data["kind"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            finished_at=datetime.fromisoformat(data["finished_at"]),
            files=tuple(StoredFile.from_dict(f) for f in data["files"]),
            tool_versions={str(k): str(v) for k, v in data.get("tool_versions", {}).items()},
            compression=str(data.get("compression", "zstd")),
            encrypted=bool(data.get("encrypted", False)),
            postgres=PostgresInfo.from_dict(pg) if pg else None,
            details=dict(data.get("details", {})),
            format=version,
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        return cls.from_dict(json.loads(raw))


_ID_SUFFIX = re.compile(r"^(?P<base>.+?)(?:-(?P<n>\d+))?$")


def backup_id_order(backup_id: str) -> tuple[str, int]:
    """Sort key of backup ids made in one second: `S-base` < `S-base-2` < `S-base-10`."""
    match = _ID_SUFFIX.match(backup_id)
    if match is None:
        return backup_id, 1
    return match.group("base"), int(match.group("n") or 1)


def new_backup_id(kind: BackupKind, now: datetime) -> str:
    """An id that sorts by time: `20261125T020000Z-base`."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}Z-{kind.value}"
