"""What Redis backup, restore and verify share: the record of one server file in a backup,
opening the configured server, where its files are on this host, a private scratch
directory, and the redis-check-rdb / redis-check-aof verdicts that refuse a damaged file."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drkit.adapters.redis.aof import manifest_name
from drkit.adapters.redis.checks import Verdict, check_aof, check_rdb
from drkit.adapters.redis.client import RedisServer
from drkit.adapters.redis.snapshot import StagedFile
from drkit.domain.backup import Manifest
from drkit.domain.errors import IntegrityError, UsageError
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace


@dataclass(frozen=True)
class FileRecord:
    """One of the server's files in a backup: where it goes, its raw size and hash, its parts."""

    path: str
    role: str
    size: int
    sha256: str
    parts: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "role": self.role,
            "size": self.size,
            "sha256": self.sha256,
            "parts": list(self.parts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRecord:
        return cls(
            str(data["path"]), str(data["role"]), int(data["size"]), str(data["sha256"]), tuple(data["parts"])
        )


def open_server(service: Service) -> RedisServer:
    if not service.url:
        raise UsageError(f"service {service.name} has no url (like redis://127.0.0.1:6379/0)")
    return RedisServer(service.url, password=service.password)


def host_dir(service: Service) -> Path | None:
    """Where this host sees the server's files: runtime.data_dir when set (a container's
    volume), for a compose container its data volume's mount point (`docker volume
    inspect`), else the server's own CONFIG GET dir."""
    if service.runtime.data_dir:
        return Path(service.runtime.data_dir)
    if service.runtime.type == "compose":
        from drkit.runtimes.compose import ComposeRuntime

        runtime = ComposeRuntime(service.runtime, name=service.name)
        volume, _mounted_at = runtime.volume_mount()
        return Path(runtime.volume_path(volume))
    return None


def scratch_dir(ws: Workspace, service: Service, name: str) -> Path:
    path = ws.state_dir / "redis" / f"{service.name}-{name}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def check_files(root: Path, records: Iterable[FileRecord | StagedFile]) -> list[Verdict]:
    """redis-check-rdb on the RDB, redis-check-aof on the AOF (through its manifest, which
    checks every file it lists); verdicts name files relative to `root`."""
    verdicts: list[Verdict] = []
    for record in records:
        if record.role == "rdb":
            verdicts.append(check_rdb(root / record.path))
        elif record.role == "aof-manifest":
            folder = record.path.rpartition("/")[0]
            found = check_aof(root / record.path)
            verdicts.append(
                Verdict(found.ok, f"{folder}/{found.file}" if folder else found.file, found.detail)
            )
    return verdicts


def require_sound(verdicts: list[Verdict], context: str) -> None:
    for verdict in verdicts:
        if not verdict.ok:
            raise IntegrityError(f"{context}: {verdict.file} is damaged: {verdict.detail}")


def records_of(manifest: Manifest) -> list[FileRecord]:
    return [FileRecord.from_dict(r) for r in manifest.details.get("files", [])]


def aof_manifest_path(appenddirname: str, appendfilename: str) -> str:
    return f"{appenddirname}/{manifest_name(appendfilename)}"
