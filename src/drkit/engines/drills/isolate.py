"""An isolated copy of the stack from the latest backups (the source's "test environment").

The copy is a stack of its own (its own services on their own ports, its own repository and
state directory) with the live stack's name and service names, so the live repository's
keys mean the same thing in the copy's. What the newest stack-wide set needs (the set,
each service's backup, PostgreSQL's with every link of its incremental chain, the object
store's versions, PostgreSQL's WAL from the base backup on) is copied from the live
repository into the copy's, every byte re-hashed against the manifests on the way; the copy
is then restored to that set. Nothing is ever written to the live repository or the live
services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drkit.domain.backup import Manifest
from drkit.domain.errors import IntegrityError, UsageError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.sets import RestoreSet
from drkit.domain.wal import Lsn, Segment
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.chains import Catalog, chain_of
from drkit.engines.core.layout import backup_dir, wal_prefix
from drkit.engines.core.set_refs import find_set, set_key
from drkit.engines.core.workspace import Workspace
from drkit.engines.stack.restore import StackRestoreReport, plan_stack, restore_stack


@dataclass(frozen=True)
class Seeded:
    chosen: RestoreSet
    keys: int
    bytes: int
    report: StackRestoreReport


def check_shape(live: Workspace, copy: Workspace) -> None:
    """The copy must name and kind its services as the live stack does."""
    missing = [
        f"{name} ({svc.kind})"
        for name, svc in live.stack.services.items()
        if svc.kind in ("postgres", "redis", "s3", "meilisearch", "hasura")
        and (name not in copy.stack.services or copy.stack.services[name].kind != svc.kind)
    ]
    if missing:
        raise UsageError(
            "an isolated drill copy runs postgres, redis, s3, meilisearch and hasura under those names; "
            f"this stack names {', '.join(missing)} otherwise: drill a staging stack with --target live --yes"
        )


def needed_keys(live: Workspace, chosen: RestoreSet) -> list[str]:
    stack = live.stack
    keys = [set_key(stack.name, chosen.set_id)]
    for service, backup_id in chosen.backups.items():
        if service not in stack.services:
            continue
        if stack.services[service].kind == "postgres":
            chain = _chain(live, service, backup_id)
            for link in chain:
                keys += live.repo.list(backup_dir(stack.name, service, link.backup_id) + "/")
            keys += _wal_from(live, service, chain[-1])
            continue
        keys += live.repo.list(backup_dir(stack.name, service, backup_id) + "/")
        if stack.services[service].kind == "s3":
            keys += live.repo.list(f"{stack.name}/{service}/objects/")
    return keys


def _chain(live: Workspace, service: str, backup_id: str) -> tuple[Manifest, ...]:
    """The set's PostgreSQL backup and, when it is incremental (a nightly set's part on
    weekdays), every backup it restores on top of: the copy has only what is copied."""
    listing = list_backups(live.repo, live.stack.name, service)
    catalog = Catalog.of(listing.complete, ((d.backup_id, d.reason) for d in listing.damaged))
    manifest = catalog.complete.get(backup_id)
    if manifest is None:
        raise IntegrityError(
            f"set's backup {backup_id} of {service} is not a complete backup in the repository"
        )
    return chain_of(manifest, catalog)


def _wal_from(live: Workspace, service: str, manifest: Manifest) -> list[str]:
    pg = manifest.require_postgres()
    first = Segment.containing(Lsn.parse(pg.start_lsn), pg.timeline, pg.wal_segment_size).name
    out = []
    for key in live.repo.list(wal_prefix(live.stack.name, service)):
        name = key.rsplit("/", 1)[-1]
        if name.endswith((".history", ".history.zst", ".history.zst.age")) or name[:24] >= first:
            out.append(key)
    return out


def seed_from_live(
    live: Workspace,
    copy: Workspace,
    *,
    set_id: str | None = None,
    drkit_argv: list[str],
    say: Callable[[str], None],
    progress: Progress = SILENT,
) -> Seeded:
    """Copy what the newest (or the named) set needs into the copy's repository, then restore
    the copy to it. The stack restore re-hashes every file against its manifest."""
    check_shape(live, copy)
    chosen = find_set(live, set_id)
    keys = needed_keys(live, chosen)
    copied = 0
    for key in keys:
        data = live.repo.get(key)
        copy.repo.put(key, data, overwrite=True)
        copied += len(data)
    say(f"copied {len(keys)} objects ({copied >> 10} KiB) of set {chosen.set_id} into the drill's repository")
    plan = plan_stack(copy, set_id=chosen.set_id)
    report = restore_stack(copy, plan, drkit_argv=drkit_argv, say=say, own_archive=True, progress=progress)
    return Seeded(chosen, len(keys), copied, report)
