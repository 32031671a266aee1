"""Chains of incremental backups: an incremental PostgreSQL base backup holds only what changed
since its parent, so it restores only on top of its whole chain (the full backup first, then
every incremental up to it). One place says whether a chain is whole; restore, verify, prune,
sync and `backups list` all ask it.

Each incremental's manifest names its parent and the whole chain (`postgres.parent`,
`postgres.chain`); a link is broken when its manifest is missing or damaged, or when it is
not the backup the child was taken from (another cluster, a later backup).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drkit.domain.backup import Manifest
from drkit.domain.errors import IntegrityError
from drkit.domain.wal import Lsn


class BrokenChainError(IntegrityError):
    """An incremental backup whose chain cannot be restored; names the broken link."""

    def __init__(self, backup_id: str, link: str, why: str) -> None:
        super().__init__(
            f"backup {backup_id} is incremental and its chain is broken at {link}: {why}; "
            f"it cannot be restored",
            hint="restore an earlier backup (the WAL carries it forward), or take a new full backup",
        )
        self.backup_id, self.link, self.why = backup_id, link, why


@dataclass(frozen=True)
class Catalog:
    """What a chain is resolved against: the complete backups of one service by id, and the
    damaged ones with the reason."""

    complete: Mapping[str, Manifest]
    damaged: Mapping[str, str]

    @classmethod
    def of(cls, complete: Iterable[Manifest], damaged: Iterable[tuple[str, str]] = ()) -> Catalog:
        return cls({m.backup_id: m for m in complete}, dict(damaged))


def chain_of(m: Manifest, catalog: Catalog) -> tuple[Manifest, ...]:
    """Every backup `m` needs, the full one first and `m` last (just `m` for a full backup);
    BrokenChainError naming the first broken link."""
    pg = m.postgres
    if pg is None or not pg.is_incremental:
        return (m,)
    recorded = (*pg.chain, m.backup_id) if pg.chain else None
    links: list[Manifest] = [m]
    seen = {m.backup_id}
    child = m
    while (parent_id := child.parent_id) is not None:
        if parent_id in seen:
            raise BrokenChainError(m.backup_id, parent_id, "the chain loops back on itself")
        seen.add(parent_id)
        parent = catalog.complete.get(parent_id)
        if parent is None:
            why = catalog.damaged.get(parent_id)
            raise BrokenChainError(
                m.backup_id, parent_id, f"damaged ({why})" if why else "it is missing from the repository"
            )
        _check_link(m.backup_id, parent, child)
        links.append(parent)
        child = parent
    chain = tuple(reversed(links))
    if recorded is not None and tuple(c.backup_id for c in chain) != recorded:
        raise BrokenChainError(
            m.backup_id, chain[0].backup_id, f"its manifest records the chain {' -> '.join(recorded)}"
        )
    return chain


def _check_link(backup_id: str, parent: Manifest, child: Manifest) -> None:
    """The parent is the backup the child was taken from: the same cluster, ending before."""
    p, c = parent.postgres, child.require_postgres()
    if p is None:
        raise BrokenChainError(backup_id, parent.backup_id, "it is not a PostgreSQL base backup")
    if p.system_identifier != c.system_identifier:
        raise BrokenChainError(
            backup_id, parent.backup_id, f"it is of another cluster (system {p.system_identifier})"
        )
    if Lsn.parse(p.stop_lsn) > Lsn.parse(c.start_lsn):
        raise BrokenChainError(backup_id, parent.backup_id, f"it ends after {child.backup_id} starts")


def broken_chains(catalog: Catalog) -> dict[str, BrokenChainError]:
    """The incremental backups whose chain is broken, by id."""
    broken: dict[str, BrokenChainError] = {}
    for m in catalog.complete.values():
        try:
            chain_of(m, catalog)
        except BrokenChainError as exc:
            broken[m.backup_id] = exc
    return broken


def needed_by(backup_id: str, catalog: Catalog) -> list[str]:
    """The incremental backups (directly or through others) built on `backup_id`."""
    out: list[str] = []
    frontier = {backup_id}
    children = sorted(
        (m for m in catalog.complete.values() if m.parent_id is not None),
        key=lambda m: (m.finished_at, m.backup_id),
    )
    for m in children:
        if m.parent_id in frontier:
            frontier.add(m.backup_id)
            out.append(m.backup_id)
    return out
