"""Everything `drkit restore postgres` decides before it asks: where the restore goes, which
backup and WAL reach the target, every file it will read checked (present, of its recorded
size; the tar index against its SHA-256), and what the operator is asked to confirm.
Nothing is touched; the CLI shows this, asks, stops the dependents, then calls `restore`
with the same request (which checks again, under its lock)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drkit.domain.errors import UsageError
from drkit.domain.recovery import RecoveryTarget
from drkit.domain.stack import Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.plan import AfterArchiveEnd, RestorePlan
from drkit.engines.postgres.preflight import check_inputs
from drkit.engines.postgres.restore import RestoreRequest, plan
from drkit.engines.postgres.switch_wal import switch_wal_and_wait


@dataclass(frozen=True)
class PreparedRestore:
    service: Service
    request: RestoreRequest
    plan: RestorePlan

    @property
    def where(self) -> str:
        if self.request.in_place:
            return f"in place over {self.service.runtime.data_dir}"
        return f"into {self.request.to}"

    @property
    def summary(self) -> str:
        chain = ""
        if self.plan.chain:  # an incremental: every link of its chain is restored
            chain = f" (incremental: {len(self.plan.chain) - 1} on {self.plan.chain[0].backup_id})"
        return (
            f"backup {self.plan.backup.backup_id}{chain} + WAL {self.plan.first_segment}.."
            f"{self.plan.last_segment or '?'} -> {self.request.target.describe()} following timeline "
            f"{self.plan.timeline}, {self.where}"
        )

    @property
    def question(self) -> str | None:
        """What must be confirmed (`--yes`) before the restore runs; None: nothing destructive."""
        if not self.request.in_place:
            return None
        return f"stop {self.service.name} and replace {self.service.runtime.data_dir} (it is moved aside)?"

    def to_dict(self) -> dict[str, object]:
        return {
            "backup_id": self.plan.backup.backup_id,
            "chain": [m.backup_id for m in self.plan.links],
            "target": self.request.target.describe(),
            "first_segment": self.plan.first_segment,
            "last_segment": self.plan.last_segment,
            "timeline": self.plan.timeline,
            "in_place": self.request.in_place,
            "to": str(self.request.to) if self.request.to else None,
        }


def prepare_restore(
    ws: Workspace,
    service: Service,
    target: RecoveryTarget,
    *,
    backup_id: str | None = None,
    to: Path | None = None,
    in_place: bool = False,
    keep_running: bool = False,
    switch_wal: bool = False,
    say: Callable[[str], None] | None = None,
) -> PreparedRestore:
    """Decide the restore. `switch_wal` (the operator said --yes): when the target time lies
    after the archive's last commit, close the running primary's current WAL segment, wait
    for it in the repository, and plan again, instead of refusing (engines/postgres/switch_wal.py)."""
    if in_place and to is not None:
        raise UsageError("give --to DIR or --in-place, not both")
    if not in_place and to is None:
        raise UsageError("say where to restore: --to DIR (safe, the default way) or --in-place --yes")
    request = RestoreRequest(
        target=target, backup_id=backup_id, to=to, in_place=in_place, keep_running=keep_running
    )
    try:
        chosen = plan(ws, service, request)
    except AfterArchiveEnd:
        if not switch_wal:
            raise
        switch_wal_and_wait(ws, service, commit=True, say=say)
        chosen = plan(ws, service, request)
    check_inputs(ws, service, chosen)  # a missing part is refused before anything stops
    return PreparedRestore(service, request, chosen)
