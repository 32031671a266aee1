"""Which backups `drkit verify` checks: one by id (any service's, a unique start of an id, or
`latest`), or, with no id, the newest backup of every service (of one with --service). With
--deep, PostgreSQL's newest *base* backup (the one a restore starts from); kinds that have no
deep check (MeiliSearch dumps, Hasura metadata) are re-hashed only."""

from __future__ import annotations

from dataclasses import dataclass

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import NotFoundError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups, resolve_backup
from drkit.engines.core.registry import has_engine
from drkit.engines.core.workspace import Workspace
from drkit.engines.stack.verify import NO_DEEP


@dataclass(frozen=True)
class VerifyChoice:
    service: Service
    manifest: Manifest
    deep: bool  # deep for this one (asked for, and defined for its kind)


@dataclass(frozen=True)
class VerifyPlan:
    chosen: tuple[VerifyChoice, ...]
    without_backup: tuple[str, ...]  # services drkit backs up that have none yet
    single: bool  # one backup was asked for (an id, or --service)


def backups_to_verify(ws: Workspace, ref: str | None, *, service: str | None, deep: bool) -> VerifyPlan:
    names = [ws.stack.service(service).name] if service else sorted(ws.stack.services)
    if ref is not None:
        m = resolve_backup(ws.repo, ws.stack.name, names, ref)
        return VerifyPlan((VerifyChoice(ws.stack.service(m.service), m, deep),), (), True)
    chosen: list[VerifyChoice] = []
    missing: list[str] = []
    for name in names:
        svc = ws.stack.service(name)
        if not has_engine(svc.kind):
            continue
        complete = list_backups(ws.repo, ws.stack.name, name).complete
        if deep and svc.kind == "postgres":
            complete = tuple(m for m in complete if m.kind is BackupKind.BASE)
        if not complete:
            missing.append(name)
            continue
        newest = max(complete, key=lambda m: (m.finished_at, m.backup_id))
        chosen.append(VerifyChoice(svc, newest, deep and newest.kind not in NO_DEEP))
    if not chosen:
        raise NotFoundError(
            f"no complete backup of {', '.join(names)} in {ws.repo.location}",
            hint="`drkit backup` takes one",
        )
    return VerifyPlan(tuple(chosen), tuple(missing), service is not None)
