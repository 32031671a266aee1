"""`drkit restore SERVICE`: what is decided before anything is touched, for any kind.
PostgreSQL gets its own preparation (a target, a backup, the WAL to reach it); every other
kind is restored by its engine from the registry with RestoreOptions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from drkit.domain.errors import UsageError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.stack import Service
from drkit.engines.core.choose import BackupChoice
from drkit.engines.core.registry import ServiceEngine, engine_for
from drkit.engines.core.restore_choice import RESTORE_KINDS, choose_for_restore
from drkit.engines.core.types import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.logical_restore import PreparedLogicalRestore, prepare_logical
from drkit.engines.postgres.prepare import PreparedRestore, prepare_restore


@dataclass(frozen=True)
class PreparedServiceRestore:
    """A restore of a non-PostgreSQL service, ready to run once confirmed."""

    service: Service
    engine: ServiceEngine
    options: RestoreOptions
    in_place: str | None = None  # objects --in-place: what happens to the container and volume
    choice: BackupChoice | None = None  # which backup, and why (the run uses exactly this one)

    @property
    def summary(self) -> str:
        source = self.options.backup_id or "the newest backup"
        if self.choice is not None:
            source = f"{self.choice.manifest.backup_id} ({self.choice.why})"
        where = f" into {self.options.to}" if self.options.to else ""
        steps = f": {self.in_place}" if self.in_place else ""
        return f"restore {self.service.name} ({self.service.kind}) from {source}{where}{steps}"

    @property
    def question(self) -> str | None:
        return None if self.options.to else f"replace the live data of {self.service.name}?"

    def run(self, ws: Workspace) -> RestoreResult:
        if self.in_place:
            from drkit.engines.objects.restore_volume import restore_in_place

            return restore_in_place(ws, self.service, self.options)
        return self.engine.restore(ws, self.service, self.options)


def prepare_service_restore(
    ws: Workspace,
    name: str,
    target: RecoveryTarget,
    *,
    backup_id: str | None = None,
    to: str | None = None,
    in_place: bool = False,
    keep_running: bool = False,
    prefix: str | None = None,
    yes: bool = False,
    into_database: str | None = None,
    tables: tuple[str, ...] = (),
    from_database: str | None = None,
    switch_wal: Callable[[str], None] | None = None,
) -> PreparedRestore | PreparedServiceRestore | PreparedLogicalRestore:
    service = ws.stack.services.get(name)
    if service is None:
        raise UsageError(f"no service {name!r} in {ws.stack.source_path}")
    if service.kind == "postgres" and (into_database or tables):
        if to or in_place or target.kind is not TargetKind.LATEST:
            raise UsageError(
                "--database/--table restore a logical dump as it is: no --to, --in-place or target"
            )
        return prepare_logical(
            ws, service, backup_id=backup_id, into=into_database, tables=tables, from_database=from_database
        )
    if into_database or tables:
        raise UsageError("--database and --table are for PostgreSQL's logical backups")
    if service.kind == "postgres":
        if prefix:
            raise UsageError("--prefix is for object storage, not PostgreSQL")
        return prepare_restore(
            ws,
            service,
            target,
            backup_id=backup_id,
            to=Path(to) if to else None,
            in_place=in_place,
            keep_running=keep_running,
            switch_wal=switch_wal is not None,  # --yes: switch WAL on the primary when the target needs it
            say=switch_wal,
        )
    if target.lsn is not None or target.name is not None:
        raise UsageError(f"--target-lsn and --target-name are PostgreSQL's; {name} takes --target-time")
    when: datetime | None = target.time
    if service.kind == "s3" and in_place:
        return _chosen(ws, _objects_in_place(service, backup_id, when, to, prefix, yes))
    options = RestoreOptions(backup_id=backup_id, target_time=when, yes=yes, to=to, prefix=prefix)
    return _chosen(ws, PreparedServiceRestore(service, engine_for(service), options))


def _chosen(ws: Workspace, prepared: PreparedServiceRestore) -> PreparedServiceRestore:
    """The backup decided now (core/choose.py), shown before anything is asked, and named in
    the options so the restore uses exactly the one shown."""
    if prepared.service.kind not in RESTORE_KINDS:
        return prepared
    choice = choose_for_restore(ws, prepared.service, prepared.options)
    options = replace(prepared.options, backup_id=choice.manifest.backup_id)
    return replace(prepared, options=options, choice=choice)


def _objects_in_place(
    service: Service,
    backup_id: str | None,
    when: datetime | None,
    to: str | None,
    prefix: str | None,
    yes: bool,
) -> PreparedServiceRestore:
    """Object storage into its container's emptied volume: where that is, asked of docker now."""
    from drkit.engines.objects.restore_volume import volume_target

    if to or prefix:
        raise UsageError(
            "--in-place restores every bucket of the backup into the emptied volume: no --to or --prefix"
        )
    options = RestoreOptions(backup_id=backup_id, target_time=when, yes=yes)
    return PreparedServiceRestore(service, engine_for(service), options, volume_target(service).plan())
