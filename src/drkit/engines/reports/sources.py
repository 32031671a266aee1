"""Where a report's journals come from: the stack's journals (this host and the repository),
or, with no stack configured, a journal file and the journals beside it."""

from __future__ import annotations

from pathlib import Path

from drkit.domain.errors import DrkitError, NotFoundError, UsageError
from drkit.domain.journal import Journal
from drkit.engines.core import journals
from drkit.engines.core.workspace import Workspace
from drkit.engines.reports.build import summarize
from drkit.engines.reports.model import DamagedJournal, RunListing


def from_workspace(ws: Workspace, ref: str) -> tuple[Journal, list[Journal]]:
    """The journal named by `ref` (a path or a run id) and every stored journal."""
    journal = journals.load(ws, ref)
    history, _damaged = journals.list_journals(ws)
    return journal, history


def from_file(path: Path) -> tuple[Journal, list[Journal]]:
    """A journal file and the readable journals in its directory (damaged ones are left out:
    `drkit drills list` names them)."""
    if path.suffix != ".json":
        raise UsageError(f"{path}: a journal file ends in .json (or give a run id and a stack.yaml)")
    try:
        journal = Journal.from_json(path.read_bytes())
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such journal") from None
    history: list[Journal] = []
    for sibling in sorted(path.parent.glob("*.json")):
        try:
            history.append(Journal.from_json(sibling.read_bytes()))
        except (OSError, DrkitError):
            continue
    return journal, history


def list_runs(ws: Workspace, scenario: str | None = None) -> RunListing:
    """Every stored journal (drills and recoveries), oldest first, and the damaged ones."""
    found, damaged = journals.list_journals(ws)
    runs = tuple(summarize(j) for j in found if scenario is None or j.scenario == scenario)
    return RunListing(runs, tuple(DamagedJournal(where, reason) for where, reason in damaged))
