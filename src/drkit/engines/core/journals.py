"""Where journals live: on this host (`<state_dir>/journals/<run-id>.json`, written atomically
and fsynced after every step, so a killed run resumes from it) and in the repository
(`<stack>/journals/<run-id>.json`, so the evidence survives the host). Plain JSON: a
journal holds no secret and must be readable without drkit."""

from __future__ import annotations

from pathlib import Path

from drkit.domain.errors import DrkitError, NotFoundError, RepositoryError
from drkit.domain.journal import Journal
from drkit.engines.core.layout import journal_key, journals_prefix
from drkit.engines.core.workspace import Workspace
from drkit.infra.atomic import write_atomic


def local_path(ws: Workspace, run_id: str) -> Path:
    return ws.state_dir / "journals" / f"{run_id}.json"


def save_local(ws: Workspace, journal: Journal) -> Path:
    """Write the journal on this host, atomically and fsynced: the copy `--resume` reads."""
    path = local_path(ws, journal.run_id)
    write_atomic(path, journal.to_json(), mode=0o600)
    return path


def try_save_remote(ws: Workspace, journal: Journal) -> str | None:
    """Copy the journal to the repository; the error's message if that failed."""
    try:
        ws.repo.put(journal_key(ws.stack.name, journal.run_id), journal.to_json(), overwrite=True)
    except (OSError, DrkitError) as exc:
        return str(exc)
    return None


def load(ws: Workspace, run_id_or_path: str) -> Journal:
    """A journal by path, by run id (this host first, then the repository)."""
    candidate = Path(run_id_or_path)
    if candidate.suffix == ".json" and candidate.exists():
        return Journal.from_json(candidate.read_bytes())
    local = local_path(ws, run_id_or_path)
    if local.exists():
        return Journal.from_json(local.read_bytes())
    try:
        return Journal.from_json(ws.repo.get(journal_key(ws.stack.name, run_id_or_path)))
    except FileNotFoundError:
        raise NotFoundError(
            f"no journal {run_id_or_path} here ({local.parent}) or in {ws.repo.location}"
        ) from None


def list_journals(ws: Workspace) -> tuple[list[Journal], list[tuple[str, str]]]:
    """Every journal in the repository and on this host (the newer copy wins), oldest first;
    and the damaged ones with the reason (listed, never fatal)."""
    found: dict[str, Journal] = {}
    damaged: list[tuple[str, str]] = []
    sources: list[tuple[str, bytes]] = []
    try:
        sources += [(key, ws.repo.get(key)) for key in ws.repo.list(journals_prefix(ws.stack.name))]
    except (OSError, RepositoryError) as exc:
        damaged.append((ws.repo.location, f"cannot list journals: {exc}"))
    local_dir = ws.state_dir / "journals"
    if local_dir.is_dir():
        sources += [(str(p), p.read_bytes()) for p in sorted(local_dir.glob("*.json"))]
    for where, raw in sources:
        try:
            journal = Journal.from_json(raw)
        except DrkitError as exc:
            damaged.append((where, exc.message))
            continue
        known = found.get(journal.run_id)
        if known is None or len(journal.steps) >= len(known.steps):
            found[journal.run_id] = journal
    return sorted(found.values(), key=lambda j: j.started_at), damaged
