"""Where a MeiliSearch server keeps its files on this host (`--db-path`, `--dump-dir`,
`--snapshot-dir` in `runtime.command`, else Meilisearch's defaults relative to
`runtime.data_dir`) and a client for it (the master key is the service's `password`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drkit.adapters.meilisearch import MeilisearchClient
from drkit.domain.errors import UsageError
from drkit.domain.stack import Service

DUMP, SNAPSHOT = "dump", "snapshot"


@dataclass(frozen=True)
class ServerPaths:
    db_path: Path
    dump_dir: Path
    snapshot_dir: Path

    def artifact(self, kind: str, dump_uid: str | None = None) -> Path:
        if kind == DUMP:
            return self.dump_dir / f"{dump_uid}.dump"
        return self.snapshot_dir / f"{self.db_path.name}.snapshot"


def server_paths(service: Service) -> ServerPaths:
    """The server's database, dump and snapshot directories as seen from this host."""
    command = list(service.runtime.command)
    base = Path(service.runtime.data_dir) if service.runtime.data_dir else None

    def flag(name: str, default: str) -> Path:
        value = next((command[i + 1] for i, a in enumerate(command[:-1]) if a == name), None)
        value = value or next((a.split("=", 1)[1] for a in command if a.startswith(name + "=")), None)
        path = Path(value or default)
        if path.is_absolute():
            return path
        if base is None:
            raise UsageError(
                f"services.{service.name}: drkit reads dumps from the server's disk and cannot tell "
                f"where {name} is: set runtime.data_dir to the directory Meilisearch runs in "
                "(for docker compose, the host path of its data volume)"
            )
        return base / path

    return ServerPaths(
        flag("--db-path", "data.ms"), flag("--dump-dir", "dumps"), flag("--snapshot-dir", "snapshots")
    )


def client_for(service: Service) -> MeilisearchClient:
    if not service.url:
        raise UsageError(f"service {service.name} (meilisearch) needs a url, like http://127.0.0.1:7700")
    return MeilisearchClient(service.url, api_key=service.password)
