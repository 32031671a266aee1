"""What in-place restores and standby rebuilds kept: the moved-aside data of every service
(infra/aside.py), found beside or inside each service's live data (and each standby's), with
its size and the command that removes it (`drkit check`, text and JSON). Kept data is never
removed by drkit: the operator decides once the restored service is checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace
from drkit.infra.aside import Kept, kept


@dataclass(frozen=True)
class KeptData:
    service: str
    kept: Kept

    def to_dict(self) -> dict[str, object]:
        return {"service": self.service, **self.kept.to_dict()}


def live_paths(service: Service) -> list[Path]:
    """Where `service`'s live data is on this host (where its restores move data aside)."""
    spec = service.runtime
    if service.kind == "postgres":
        if spec.type == "compose":
            from drkit.runtimes.compose import ComposeRuntime

            runtime = ComposeRuntime(spec, name=service.name)
            volume, _at = runtime.volume_mount()
            return [Path(runtime.volume_path(volume))]
        return _postgres_dirs(service)
    if service.kind == "redis":
        from drkit.engines.redis.files import host_dir

        found = host_dir(service)
        return [found] if found is not None else []
    if service.kind == "meilisearch" and spec.type == "local":
        from drkit.engines.search.server import server_paths

        return [server_paths(service).db_path]
    if service.kind == "s3" and spec.type == "compose":
        from drkit.engines.objects.restore_volume import volume_target

        return [volume_target(service).host_path]
    return []


def _postgres_dirs(service: Service) -> list[Path]:
    """The data directories on this host: the service's, and its replication members'
    (a standby rebuilt with `replica rejoin --rebuild` or `replica init --replace` keeps its
    old data beside its own)."""
    dirs = [Path(service.runtime.data_dir)] if service.runtime.data_dir else []
    members = service.replication.members if service.replication is not None else ()
    for spec in (m.runtime for m in members):
        if spec.type in ("local", "systemd") and spec.data_dir and Path(spec.data_dir) not in dirs:
            dirs.append(Path(spec.data_dir))
    return dirs


def moved_aside(ws: Workspace) -> tuple[list[KeptData], list[CheckResult]]:
    """Every kept aside of the stack, and a check result per service that has some (or
    whose live data drkit could not locate)."""
    found: list[KeptData] = []
    results: list[CheckResult] = []
    for service in ws.stack.services.values():
        try:
            paths = live_paths(service)
        except DrkitError as exc:
            if service.kind in ("postgres", "redis", "meilisearch", "s3"):
                results.append(
                    CheckResult(
                        f"{service.name}: old data kept",
                        Status.WARNING,
                        f"cannot tell where its data lives: {exc.message}",
                        critical=False,
                    )
                )
            continue
        mine = [KeptData(service.name, k) for path in paths for k in kept(path)]
        found += mine
        if mine:
            results.append(_result(service.name, mine))
    return found, results


def _result(name: str, mine: list[KeptData]) -> CheckResult:
    parts = []
    for k in mine:
        state = "" if k.kept.complete else ", an interrupted move"
        parts.append(f"{k.kept.path} ({_size(k.kept.size)}{state}; remove: {k.kept.remove})")
    return CheckResult(
        f"{name}: old data kept",
        Status.WARNING,
        "moved aside by in-place restores; once the restored data is checked, remove: " + "; ".join(parts),
        critical=False,
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover
