"""`drkit prune`: gather one service's facts from the repository, decide (retention_policy.py),
and carry the plan out under the service's lock.

Safe to kill at any moment: a backup goes manifest first (from then on it does not exist;
what a kill leaves is an incomplete backup, which `clean_incomplete` removes on the next
prune or backup), backups before WAL (a kill never leaves a listed backup without its WAL),
and WAL oldest first, segment before its hash sidecar (the archive stays a contiguous tail).

A manifest that cannot be read or checked (damaged, a read that failed, a wrong signature,
a newer format) may name backups' WAL, object versions or files that nothing else names:
while one of a service's manifests is unreadable, nothing of that service is removed (its
backups, WAL, object versions and leftovers), and the result says which manifest stopped it
(`drkit prune` exits 3). `force_skip` names damaged backups to prune as if they did not
exist: the operator's explicit way past, once they have looked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import ChecksFailed, RepositoryError, UsageError
from drkit.domain.stack import Service
from drkit.domain.wal import DEFAULT_SEGMENT_SIZE, Lsn, Segment
from drkit.engines.core.catalog import DamagedBackup, list_backups
from drkit.engines.core.commit import clean_incomplete
from drkit.engines.core.layout import backup_dir, lock_name, manifest_key, verified_key
from drkit.engines.core.set_refs import list_sets
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.keep import pinned_reason
from drkit.engines.ops.leftovers import Leftover, describe_leftovers, sweep_leftovers
from drkit.engines.ops.object_gc import BucketSweep, plan_sweep, sweep, sweep_run_id
from drkit.engines.ops.retention_policy import BackupFact, Facts, Plan, Policy, SetFact, WalSpan, decide
from drkit.engines.postgres.wal.archive import SUFFIXES as WAL_SUFFIXES
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.redis import backup as redis_backup
from drkit.engines.search import backup as search_backup
from drkit.infra import locks
from drkit.infra.hold import hold


@dataclass(frozen=True)
class PruneResult:
    plan: Plan
    incomplete: tuple[str, ...]  # dry run: incomplete backups; else: the ones removed
    done: bool  # False: a dry run
    objects: tuple[BucketSweep, ...] | None = None  # object versions swept; None: not swept
    kind: str = ""  # the service's kind
    refused: tuple[DamagedBackup, ...] = ()  # unreadable manifests: nothing of the service removed
    skipped: tuple[DamagedBackup, ...] = ()  # damaged ones pruned past (--force-skip)
    leftovers: tuple[Leftover, ...] = ()  # of killed writes, removed (or, dry run, would be)

    def to_dict(self) -> dict[str, object]:
        p = self.plan
        objects = None
        if self.objects is not None:
            objects = [
                {
                    "bucket": b.bucket,
                    "versions": b.versions,
                    "files": len(b.files),
                    "kept_files": b.kept_files,
                    "waiting": b.waiting,
                }
                for b in self.objects
            ]
        return {
            "service": p.service,
            "dry_run": not self.done,
            "keep": [_decision(d) for d in p.keep],
            "drop": [_decision(d) for d in p.drop],
            "wal_drop": [_decision(d) for d in p.wal_drop],
            "wal_kept": p.wal_kept,
            "wal_from": p.wal_from,
            "incomplete": list(self.incomplete),
            "objects": objects,
            "refused": [{"backup_id": d.backup_id, "reason": d.reason} for d in self.refused],
            "force_skipped": [{"backup_id": d.backup_id, "reason": d.reason} for d in self.skipped],
            "leftovers": [item.to_dict() for item in self.leftovers],
        }


def _decision(d: object) -> dict[str, str]:
    return {k: str(v) for k, v in vars(d).items()}


# keep_last when backup.retention.keep_last is not set: Redis and MeiliSearch backups used to
# keep only their newest N themselves; prune is now the one place backups go, with that default.
DEFAULT_KEEP_LAST = {"redis": redis_backup.KEEP_LAST, "meilisearch": search_backup.KEEP_LAST}


def policy_of(service: Service) -> Policy:
    wal = service.postgres.wal_retention if service.kind == "postgres" and service.postgres else None
    retention = service.retention
    default = DEFAULT_KEEP_LAST.get(service.kind)
    if retention.keep_last is None and default is not None:
        retention = replace(retention, keep_last=default)
    return Policy(retention, wal)


class ManifestsUnreadable(ChecksFailed):
    """Manifests of the service cannot be read or checked: pruning it could remove what they
    name."""

    def __init__(self, service: str, damaged: tuple[DamagedBackup, ...]) -> None:
        ids = ", ".join(d.backup_id for d in damaged)
        super().__init__(f"{service}: manifests that cannot be read: {ids}; pruning nothing of {service}")
        self.damaged = damaged


def readable_manifests(
    ws: Workspace, service: str, force_skip: frozenset[str] = frozenset()
) -> tuple[Manifest, ...]:
    """The service's complete backups, or ManifestsUnreadable when any manifest cannot be read
    or checked (but those in `force_skip`). Every listing prune decides from goes through it."""
    listing = list_backups(ws.repo, ws.stack.name, service)
    blocking = tuple(d for d in listing.damaged if d.backup_id not in force_skip)
    if blocking:
        raise ManifestsUnreadable(service, blocking)
    return listing.complete


def prune(
    ws: Workspace,
    service: Service,
    *,
    dry_run: bool,
    unkept_sets: frozenset[str] = frozenset(),
    force_skip: frozenset[str] = frozenset(),
) -> PruneResult:
    """Plan (and unless `dry_run`, carry out) the retention of one service. `unkept_sets`: sets
    the sets' retention drops (set_retention.py), which then keep nothing (a dry run's; a
    real run removed them already). Refused (`refused`, nothing removed) while a manifest of
    the service cannot be read, but those named in `force_skip`."""
    try:
        if dry_run:
            return _prune_dry(ws, service, unkept_sets, force_skip)
        with locks.exclusive(ws.lock_dir, lock_name(service.name), "prune"):
            return _prune_locked(ws, service, unkept_sets, force_skip)
    except ManifestsUnreadable as exc:
        return PruneResult(_nothing(service.name), (), not dry_run, None, service.kind, refused=exc.damaged)


def _prune_dry(
    ws: Workspace, service: Service, unkept_sets: frozenset[str], force_skip: frozenset[str]
) -> PruneResult:
    readable_manifests(ws, service.name, force_skip)
    listing = list_backups(ws.repo, ws.stack.name, service.name)
    plan = plan_service(ws, service, unkept_sets, force_skip)
    swept = _objects(ws, service, plan, force_skip, live_check=False)
    leftovers = sweep_leftovers(ws, service_prefix(ws, service), dry_run=True)
    skipped = _skipped(listing.damaged, force_skip)
    return PruneResult(plan, listing.incomplete, False, _tuple(swept), service.kind, (), skipped, leftovers)


def _prune_locked(
    ws: Workspace, service: Service, unkept_sets: frozenset[str], force_skip: frozenset[str]
) -> PruneResult:
    readable_manifests(ws, service.name, force_skip)  # before anything goes
    skipped = _skipped(list_backups(ws.repo, ws.stack.name, service.name).damaged, force_skip)
    removed = clean_incomplete(ws, service.name)
    plan = plan_service(ws, service, unkept_sets, force_skip)
    carry_out(ws, plan)
    swept = _objects(ws, service, plan, force_skip, live_check=True)
    if swept:
        kept = readable_manifests(ws, service.name, force_skip)
        sweep(ws, service.name, swept, sweep_run_id(list(kept)))
    leftovers = sweep_leftovers(ws, service_prefix(ws, service), dry_run=False)
    return PruneResult(plan, removed, True, _tuple(swept), service.kind, (), skipped, leftovers)


def _skipped(damaged: tuple[DamagedBackup, ...], force_skip: frozenset[str]) -> tuple[DamagedBackup, ...]:
    return tuple(d for d in damaged if d.backup_id in force_skip)


def _nothing(service: str) -> Plan:
    return Plan(service, (), (), (), 0)


def service_prefix(ws: Workspace, service: Service) -> str:
    return f"{ws.stack.name}/{service.name}/"


def unknown_force_skip(ws: Workspace, services: list[str], force_skip: frozenset[str]) -> None:
    """`--force-skip` names only damaged backups of the services pruned: a typo must not
    pass for a decision (UsageError naming what is damaged)."""
    if not force_skip:
        return
    damaged = {d.backup_id for s in services for d in list_backups(ws.repo, ws.stack.name, s).damaged}
    unknown = sorted(force_skip - damaged)
    if unknown:
        there = ", ".join(sorted(damaged)) or "none"
        raise UsageError(
            f"--force-skip {unknown[0]}: no backup of that id has an unreadable manifest "
            f"(unreadable ones: {there})"
        )


def _tuple(swept: list[BucketSweep] | None) -> tuple[BucketSweep, ...] | None:
    return None if swept is None else tuple(swept)


def _objects(
    ws: Workspace, service: Service, plan: Plan, force_skip: frozenset[str], *, live_check: bool
) -> list[BucketSweep] | None:
    """Object-store services: the versions no kept backup lists any more (object_gc.py)."""
    if service.kind != "s3":
        return None
    kept = {d.name for d in plan.keep}
    manifests = [m for m in readable_manifests(ws, service.name, force_skip) if m.backup_id in kept]
    return plan_sweep(ws, service.name, manifests, live_check=live_check)


def plan_service(
    ws: Workspace,
    service: Service,
    unkept_sets: frozenset[str] = frozenset(),
    force_skip: frozenset[str] = frozenset(),
) -> Plan:
    floor = ws.stack.repositories[ws.stack.primary_repository].storage.retention_floor
    policy = replace(policy_of(service), floor=floor)
    facts = _recent_wal(ws, service, gather(ws, service, unkept_sets, force_skip), floor)
    return decide(facts, policy, ws.clock.now())


def _recent_wal(ws: Workspace, service: Service, facts: Facts, floor: timedelta | None) -> Facts:
    """The WAL archived within the repository's minimum retention (Object Lock keeps it there)."""
    if floor is None or not facts.wal:
        return facts
    since = ws.clock.now() - floor
    prefix = WalArchive(ws.repo, ws.stack.name, service.name, ws.codec).prefix
    recent = {_wal_name(e.key) for e in ws.repo.entries(prefix) if e.modified > since}
    return replace(facts, wal_recent=frozenset(n for n in facts.wal if n in recent))


def _wal_name(key: str) -> str:
    """The WAL file name a key of the archive stores (stored suffixes, a sidecar's stripped)."""
    base = key.rsplit("/", 1)[-1].removesuffix(".sha256")
    for suffix in WAL_SUFFIXES[::-1]:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def carry_out(ws: Workspace, plan: Plan) -> None:
    stack, service = ws.stack.name, plan.service
    for n, doomed in enumerate(plan.drop):
        ws.repo.delete(manifest_key(stack, service, doomed.name))
        if n == 0:
            hold("prune-deleting")
        ws.repo.delete_tree(backup_dir(stack, service, doomed.name))
    if plan.wal_drop:
        archive = WalArchive(ws.repo, stack, service, ws.codec)
        for wal in plan.wal_drop:
            archive.delete(wal.name)


def gather(
    ws: Workspace,
    service: Service,
    unkept_sets: frozenset[str] = frozenset(),
    force_skip: frozenset[str] = frozenset(),
) -> Facts:
    """The facts retention decides from. Sets or manifests that cannot be read stop the
    prune: deleting without knowing what they need could break them."""
    manifests = readable_manifests(ws, service.name, force_skip)
    size = next((m.postgres.wal_segment_size for m in manifests if m.postgres), DEFAULT_SEGMENT_SIZE)
    try:
        sets = list_sets(ws)
    except (ValueError, KeyError) as exc:
        raise RepositoryError(f"a set in {ws.repo.location} is unreadable ({exc}); pruning nothing") from exc
    by_id = {m.backup_id: m for m in manifests}
    set_facts = []
    for s in sets:
        backup_id = s.backups.get(service.name)
        if backup_id is None or s.set_id in unkept_sets:
            continue
        until = _set_until(by_id.get(backup_id), s.restore_point_lsn, size)
        set_facts.append(SetFact(s.set_id, backup_id, until))
    wal: tuple[str, ...] = ()
    if service.kind == "postgres":
        wal = tuple(sorted(_wal_names(ws, service.name)))
    backups = tuple(_fact(ws, m, size) for m in manifests)
    return Facts(service.name, backups, tuple(set_facts), wal, size)


def _fact(ws: Workspace, m: Manifest, size: int) -> BackupFact:
    span = None
    if m.kind is BackupKind.BASE and m.postgres is not None:
        p = m.postgres
        start = Segment.containing(Lsn.parse(p.start_lsn), p.timeline, size).number
        stop = Segment.containing(Lsn.parse(p.stop_lsn), p.timeline, size).number
        span = WalSpan(p.timeline, start, stop)
    series = m.kind.value + (f":{m.details['artifact']}" if "artifact" in m.details else "")
    verified = ws.repo.exists(verified_key(m.stack, m.service, m.backup_id))
    return BackupFact(
        m.backup_id, series, m.finished_at, verified, span, pinned=pinned_reason(ws, m), parent=m.parent_id
    )


def _set_until(m: Manifest | None, lsn: str, size: int) -> int | None:
    if m is None or m.postgres is None or not lsn:
        return None
    try:
        return Segment.containing(Lsn.parse(lsn), m.postgres.timeline, size).number
    except ValueError:
        return None


def _wal_names(ws: Workspace, service: str) -> set[str]:
    """Archived WAL names, and names whose hash sidecar outlived the segment (a killed prune
    or push): those go with their range too."""
    archive = WalArchive(ws.repo, ws.stack.name, service, ws.codec)
    names = archive.names()
    for key in ws.repo.list(archive.prefix):
        base = key.rsplit("/", 1)[-1]
        if base.endswith(".sha256"):
            names.add(base.removesuffix(".sha256"))
    return names


def describe(result: PruneResult) -> list[str]:
    """Text lines for `drkit prune`: what goes (or went) and the rule that decided."""
    p, verb = result.plan, ("removed" if result.done else "would remove")
    if result.refused:
        return _describe_refused(result)
    lines = [
        f"{p.service}: {verb} {len(p.drop)} backup(s), {len(p.wal_drop)} WAL file(s); keeping {len(p.keep)}"
    ]
    lines += [f"  keep {d.name}: {d.rule}: {d.why}" for d in p.keep]
    lines += [f"  {verb} {d.name}: {d.rule}: {d.why}" for d in p.drop]
    for first, last, count in p.wal_runs():
        lines.append(f"  {verb} WAL {first} .. {last} ({count} files)")
    if p.wal_drop:
        lines.append(f"  WAL rule: {p.wal_drop[0].rule}: {p.wal_drop[0].why}")
    if result.objects is None and result.kind == "s3":
        lines.append("  object versions: not swept (a backup of this service is in progress)")
    for b in result.objects or ():
        if b.waiting:
            lines.append(
                f"  object versions of bucket {b.bucket}: not swept until the next backup lists "
                "what an interrupted one copied"
            )
            continue
        lines.append(
            f"  {verb} {b.versions} object version(s) of bucket {b.bucket} ({len(b.files)} stored "
            f"file(s); {b.kept_files} stay): no kept backup lists them"
        )
    state = "incomplete backup" if not result.done else "removed incomplete backup"
    lines += [f"  {state} {i} (no manifest)" for i in result.incomplete]
    lines += describe_leftovers(result.leftovers, done=result.done)
    lines += [
        f"  pruned as if {d.backup_id} did not exist (--force-skip): its manifest cannot be read: {d.reason}"
        for d in result.skipped
    ]
    return lines


def _describe_refused(result: PruneResult) -> list[str]:
    service = result.plan.service
    lines = [
        f"{service}: REFUSED, nothing removed: {len(result.refused)} manifest(s) cannot be read or "
        "checked, and what they need (files, WAL, object versions) is unknown"
    ]
    lines += [f"  {d.backup_id}: {d.reason}" for d in result.refused]
    lines.append(
        "  when it reads again (a read that failed, a sign_key put back), prune again; an off-site "
        "copy may hold it intact (drkit verify --repo NAME); to prune as if it did not exist: "
        f"drkit prune {service} --force-skip {result.refused[0].backup_id}"
    )
    return lines
