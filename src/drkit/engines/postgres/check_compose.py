"""`drkit check` for a PostgreSQL run as a compose container (nself's): the WAL spool the
container must mount. (What in-place restores left in its volume: engines/stack/asides.py
and check_data.py, for every runtime.)"""

from __future__ import annotations

from drkit.adapters.container import container_mounts
from drkit.domain.checks import CheckResult, Status
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.wal.stream import spool_dir

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
