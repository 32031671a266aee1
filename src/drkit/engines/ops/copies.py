"""How many copies of each service's newest backup exist, and whether the 3-2-1 rule holds:
at least 3 copies counting the live data, on at least 2 repositories (media), at least 1 of
them off-site (a repository marked `offsite: true`, or an S3 bucket).

`count_copies` decides from plain facts (pure, unit-tested); `copies(ws)` gathers them from
the repositories: a copy is complete where the backup's manifest is (the commit point) and,
in a repository with a sign_key, correctly signed (what `drkit verify --repo` accepts).
`drkit status` shows the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from drkit.adapters.repository import open_repository
from drkit.domain.stack import RepositorySpec
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.choose import newest
from drkit.engines.core.signing import with_signing
from drkit.engines.core.workspace import Workspace

MIN_COPIES = 3  # the live data counts as one
MIN_MEDIA = 2
MIN_OFFSITE = 1


@dataclass(frozen=True)
class ServiceCopies:
    service: str
    backup_id: str | None  # its newest complete backup in the primary repository
    copies: int  # complete copies, counting the live data
    repositories: tuple[str, ...]  # those holding a complete copy
    offsite: tuple[str, ...]  # of them, the off-site ones

    @property
    def rule_321(self) -> bool:
        return (
            self.copies >= MIN_COPIES
            and len(self.repositories) >= MIN_MEDIA
            and len(self.offsite) >= MIN_OFFSITE
        )


def count_copies(
    newest: Mapping[str, str | None],
    holdings: Mapping[str, Mapping[str, frozenset[str]]],
    repositories: Mapping[str, RepositorySpec],
) -> list[ServiceCopies]:
    """newest: service -> newest backup id (None: no backup yet); holdings: repository ->
    service -> complete backup ids there."""
    out = []
    for service, backup_id in sorted(newest.items()):
        holding = tuple(
            sorted(
                name
                for name, held in holdings.items()
                if backup_id is not None and backup_id in held.get(service, frozenset())
            )
        )
        offsite = tuple(n for n in holding if repositories[n].is_offsite)
        out.append(ServiceCopies(service, backup_id, 1 + len(holding), holding, offsite))
    return out


def copies(ws: Workspace) -> list[ServiceCopies]:
    """Per service of the stack: the copies of its newest backup (by the primary repository)."""
    stack = ws.stack
    holdings: dict[str, dict[str, frozenset[str]]] = {}
    newest_ids: dict[str, str | None] = {}
    now = ws.clock.now()
    for name, spec in stack.repositories.items():
        primary = name == stack.primary_repository
        repo = ws.repo if primary else with_signing(open_repository(spec), spec)
        held: dict[str, frozenset[str]] = {}
        for svc in stack.services:
            complete = list_backups(repo, stack.name, svc).complete
            held[svc] = frozenset(m.backup_id for m in complete)
            if primary:  # the one rule: a backup dated in the future is not the newest
                chosen = newest(complete, now)
                newest_ids[svc] = chosen.backup_id if chosen else None
        holdings[name] = held
    return count_copies(newest_ids, holdings, stack.repositories)
