"""repositories.<name> storage keys (storage_class, lifecycle, min_retention, object_lock,
archive_restore) -> the domain's StoragePolicy."""

from __future__ import annotations

from collections.abc import Callable

from drkit.config.models import RepositoryModel
from drkit.domain.storage_policy import (
    ArchiveRestore,
    LockMode,
    ObjectLock,
    RetrievalTier,
    StoragePolicy,
    Transition,
)

Loc = tuple[str | int, ...]
Resolve = Callable[[str | None, Loc], str | None]  # a secret reference at a key path -> its value


def storage_policy(name: str, r: RepositoryModel, secret: Resolve) -> StoragePolicy:
    lock = None
    if r.object_lock is not None:
        prove = r.object_lock.prove_with
        where: Loc = ("repositories", name, "object_lock", "prove_with")
        prove_with = None
        if prove is not None:
            prove_with = (
                secret(prove.access_key, (*where, "access_key")),
                secret(prove.secret_key, (*where, "secret_key")),
            )
        lock = ObjectLock(LockMode(r.object_lock.mode.upper()), r.object_lock.retain, prove_with)
    restore = r.archive_restore
    return StoragePolicy(
        storage_class=r.storage_class,
        transitions=tuple(
            Transition(t.after, t.storage_class) for t in (r.lifecycle.transitions if r.lifecycle else ())
        ),
        min_retention=r.min_retention,
        object_lock=lock,
        archive_restore=ArchiveRestore(
            RetrievalTier(restore.tier), restore.days, restore.wait, restore.poll, restore.automatic
        ),
    )
