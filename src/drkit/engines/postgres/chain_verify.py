"""Verify what an incremental backup needs besides itself: every earlier link of its chain
present, readable, and each of its files matching its SHA-256. One broken link fails the
chain, naming that link: nothing after it can be restored."""

from __future__ import annotations

from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.chains import BrokenChainError, Catalog, chain_of
from drkit.engines.core.rehash import verify_files
from drkit.engines.core.workspace import Workspace


def verify_chain(ws: Workspace, m: Manifest) -> list[CheckResult]:
    """[] for a full backup; else one "chain" result."""
    if m.parent_id is None:
        return []
    listing = list_backups(ws.repo, ws.stack.name, m.service)
    catalog = Catalog.of(listing.complete, ((d.backup_id, d.reason) for d in listing.damaged))
    try:
        chain = chain_of(m, catalog)
    except BrokenChainError as exc:
        return [CheckResult("chain", Status.FAILED, exc.message)]
    for link in chain[:-1]:
        bad = [r for r in verify_files(ws, link) if r.status is not Status.OK]
        if bad:
            what = "; ".join(f"{r.name}: {r.detail}" for r in bad[:3])
            return [
                CheckResult(
                    "chain",
                    Status.FAILED,
                    f"the chain of {m.backup_id} is broken at {link.backup_id} ({what}); "
                    f"it cannot be restored",
                )
            ]
    links = " -> ".join(c.backup_id for c in chain)
    return [CheckResult("chain", Status.OK, f"{len(chain) - 1} earlier backups, every file matches: {links}")]
