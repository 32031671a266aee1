"""`drkit check` for a PostgreSQL run as a compose container (nself's): the WAL spool the
container must mount, and the old data directories in-place restores left in its volume."""

from __future__ import annotations

from pathlib import Path

from drkit.adapters.container import container_mounts
from drkit.domain.checks import CheckResult, Status
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.restore_compose import ASIDE_PREFIX, FAILED_PREFIX
from drkit.engines.postgres.wal.stream import spool_dir
from drkit.runtimes.compose import ComposeRuntime

OK, WARN, FAIL = Status.OK, Status.WARNING, Status.FAILED


def spool_mounted(ws: Workspace, service: Service) -> CheckResult:
    """pg_receivewal runs in the container and writes into drkit's spool: the container must
    mount it at the same path (docs/nself.md, the compose override)."""
    name, spool = f"{service.name}: wal spool", str(spool_dir(ws, service))
    mounts = container_mounts(service.runtime)
    if mounts is None:
        return CheckResult(name, FAIL, f"docker cannot inspect {service.runtime.container}")
    if any(dest == spool for _source, dest in mounts):
        return CheckResult(name, OK, f"{service.runtime.container} mounts {spool}")
    return CheckResult(
        name,
        FAIL,
        f"{service.runtime.container} does not mount {spool}, where pg_receivewal (run inside it) "
        f"writes: add `- {spool}:{spool}` under services.{service.name}.volumes in "
        "docker-compose.override.yml and recreate the container (`nself restart`)",
    )


def kept_asides(service: Service) -> CheckResult:
    """An in-place restore keeps the old contents inside the volume, which nself mounts as
    PGDATA: every base backup carries them until the operator deletes them."""
    name, volume = f"{service.name}: old data kept", service.runtime.volume or ""
    root = Path(ComposeRuntime(service.runtime, name=service.name).volume_path(volume))
    kept = sorted(p.name for p in root.iterdir() if p.name.startswith((ASIDE_PREFIX, FAILED_PREFIX)))
    if not kept:
        return CheckResult(name, OK, f"nothing left by a restore in volume {volume}")
    return CheckResult(
        name,
        WARN,
        f"{', '.join(kept)} in volume {volume} ({root}): kept by earlier restores inside the data "
        "directory, so every base backup carries them too; once the restored data is checked, "
        "delete them",
        critical=False,
    )
