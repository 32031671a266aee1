"""Reading stack-wide restore points (sets) from the repository: every service engine needs
this to keep the backups a set refers to; taking and restoring sets is `stack/sets.py`."""

from __future__ import annotations

from drkit.domain.errors import NotFoundError
from drkit.domain.sets import RestoreSet
from drkit.engines.core.workspace import Workspace


def sets_prefix(stack: str) -> str:
    return f"{stack}/sets/"


def set_key(stack: str, set_id: str) -> str:
    return f"{sets_prefix(stack)}{set_id}.json"


def list_sets(ws: Workspace) -> list[RestoreSet]:
    out = []
    for key in ws.repo.list(sets_prefix(ws.stack.name)):
        if key.endswith(".json"):
            out.append(RestoreSet.from_json(ws.repo.get(key)))
    return sorted(out, key=lambda s: s.created_at)


def find_set(ws: Workspace, set_id: str | None) -> RestoreSet:
    sets = list_sets(ws)
    if not sets:
        raise NotFoundError(f"no stack-wide set in {ws.repo.location}", hint="take one: drkit backup --all")
    if set_id is None:
        return sets[-1]
    for s in sets:
        if s.set_id == set_id:
            return s
    raise NotFoundError(f"no set {set_id} in {ws.repo.location}")
