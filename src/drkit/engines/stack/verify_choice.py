"""Which backups `drkit verify` checks: one by id (any service's, a unique start of an id, or
`latest`), or, with no id, the newest backup of every service (of one with --service). With
--deep, PostgreSQL's newest *base* backup (the one a restore starts from); kinds that have no
deep check (MeiliSearch dumps, Hasura metadata) are re-hashed only. "Newest" is the one rule of
core/choose.py: a backup whose times this host's clock cannot believe is passed over (and
named); an id still takes it."""

from __future__ import annotations

from dataclasses import dataclass

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import NotFoundError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups, resolve_backup
from drkit.engines.core.choose import Unproven, newest, unproven_backups
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
    passed_over: tuple[Unproven, ...] = ()  # future-dated: not "the newest" (core/choose.py)


def backups_to_verify(ws: Workspace, ref: str | None, *, service: str | None, deep: bool) -> VerifyPlan:
    names = [ws.stack.service(service).name] if service else sorted(ws.stack.services)
    now = ws.clock.now()
    if ref is not None:
        m = resolve_backup(ws.repo, ws.stack.name, names, ref, now=now)
        return VerifyPlan((VerifyChoice(ws.stack.service(m.service), m, deep),), (), True)
    chosen: list[VerifyChoice] = []
    missing: list[str] = []
    passed: list[Unproven] = []
    for name in names:
        svc = ws.stack.service(name)
        if not has_engine(svc.kind):
            continue
        complete = list_backups(ws.repo, ws.stack.name, name).complete
        if deep and svc.kind == "postgres":
            complete = tuple(m for m in complete if m.kind is BackupKind.BASE)
        passed += unproven_backups(complete, now)
        found = newest(complete, now)
        if found is None:
            missing.append(name)
            continue
        chosen.append(VerifyChoice(svc, found, deep and found.kind not in NO_DEEP))
    if not chosen:
        hint = "`drkit backup` takes one"
        if passed:
            hint = (
                "passed over, their times cannot be believed here: "
                + "; ".join(u.describe() for u in passed)
                + ": check the clocks, or name one by id"
            )
        raise NotFoundError(f"no complete backup of {', '.join(names)} in {ws.repo.location}", hint=hint)
    return VerifyPlan(tuple(chosen), tuple(missing), service is not None, tuple(passed))
