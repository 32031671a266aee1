"""Stack-wide restore points: `drkit backup --all` records one moment for every service;
`drkit restore --set ID` (or `--all --target-time T`) brings each back to it in dependency
order, then checks the services against each other.

The moment is PostgreSQL's named restore point. Right after it: the Redis snapshot, the
object-version copy (restored "as of" the set's time), the MeiliSearch dump and the Hasura
metadata. The set file is written last: a set that failed midway does not exist.
"""

from __future__ import annotations

from collections.abc import Callable

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.domain.backup import BackupKind
from drkit.domain.errors import OperationError, RepositoryError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.sets import RestoreSet, new_set_id
from drkit.domain.stack import Service, WalMode
from drkit.domain.wal import Lsn
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.choose import newest
from drkit.engines.core.commit import BackupResult
from drkit.engines.core.registry import has_engine
from drkit.engines.core.set_refs import set_key
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.backup import base_backup
from drkit.engines.postgres.incremental import incremental_backup
from drkit.engines.postgres.switch_wal import switch_wal_and_wait
from drkit.engines.stack.backup import ServiceOutcome, backup_each, describe_error
from drkit.engines.stack.estimate import backup_estimate
from drkit.engines.stack.graph import ServiceGraph
from drkit.infra import locks
from drkit.infra.wait import wait_for

Say = Callable[[str], None]


def ordered_services(ws: Workspace) -> list[Service]:
    """Services drkit backs up, in dependency (start) order."""
    graph = ServiceGraph.from_stack(ws.stack)
    return [
        ws.stack.services[n]
        for level in graph.start_plan([])
        for n in level
        if has_engine(ws.stack.services[n].kind)
    ]


def backup_set(
    ws: Workspace,
    *,
    say: Say,
    drkit_argv: list[str],
    on_done: Callable[[ServiceOutcome], None] | None = None,
    progress: Progress = SILENT,
    postgres_type: str = "base",  # or incremental: on the newest base when one can be
) -> RestoreSet:
    """Take the set. A service that fails does not stop the others (each is backed up and
    reported through `on_done`), but a set must hold every service: then no set is written
    and the error names what failed."""
    del drkit_argv  # restores need it; taking a set does not
    services = ordered_services(ws)
    postgres = [s for s in services if s.kind == "postgres"]
    if len(postgres) != 1:
        raise OperationError("a stack-wide set needs exactly one PostgreSQL service")
    pg = postgres[0]
    others = [s for s in services if s.kind != "postgres"]
    with locks.exclusive(ws.lock_dir, "stack-set"):
        started = ws.clock.monotonic()
        try:
            base, taken = _base_backup_for_set(ws, pg, say, progress, postgres_type)
            created = ws.clock.now()
            set_id = new_set_id(created)
            point = f"drkit-{set_id}"
            progress.step(f"create the PostgreSQL restore point {point} and wait for its WAL")
            lsn, timeline = _restore_point(ws, pg, point)
        except Exception as exc:  # the set cannot be made; the other services are still backed up
            failed = ServiceOutcome(
                pg.name, pg.kind, ws.clock.monotonic() - started, error=describe_error(exc)
            )
            if on_done is not None:
                on_done(failed)
            rest = backup_each(ws, others, on_done=on_done, before=(failed,), progress=progress)
            raise _incomplete([failed, *rest]) from exc
        say(f"PostgreSQL restore point {point} at {lsn} on timeline {timeline}")
        done = ServiceOutcome(pg.name, pg.kind, ws.clock.monotonic() - started, taken, reused=base)
        if on_done is not None:
            on_done(done)
        outcomes = backup_each(ws, others, on_done=on_done, progress=progress)
        if not all(o.ok for o in outcomes):
            raise _incomplete(outcomes)
        backups = {pg.name: base}
        for outcome in outcomes:
            if outcome.backup_id is not None:
                backups[outcome.service] = outcome.backup_id
                say(f"{outcome.service}: {outcome.backup_id}")
        record = RestoreSet(
            set_id, ws.stack.name, created, point, str(lsn), backups, ws.clock.now(), timeline
        )
        try:
            ws.repo.put(set_key(ws.stack.name, set_id), record.to_json(), overwrite=False)
        except FileExistsError as exc:
            raise RepositoryError(f"set {set_id} already exists") from exc
        return record


def _incomplete(outcomes: list[ServiceOutcome]) -> OperationError:
    failed = [o for o in outcomes if not o.ok]
    done = [o.service for o in outcomes if o.ok]
    return OperationError(
        "no set written (a set holds every service): "
        + "; ".join(f"{o.service} failed: {o.error}" for o in failed)
        + (f". Backed up anyway: {', '.join(done)}" if done else "")
    )


def _base_backup_for_set(
    ws: Workspace, pg: Service, say: Say, progress: Progress, postgres_type: str = "base"
) -> tuple[str, BackupResult | None]:
    """The newest base backup when it is younger than `sets.base_max_age`; else a fresh one
    (a nightly set then restores from that night's base, not from a month of WAL). The
    backup's id, and its result when it was taken now."""
    listing = list_backups(ws.repo, ws.stack.name, pg.name)
    bases = [m for m in listing.complete if m.kind is BackupKind.BASE]
    chosen = newest(bases, ws.clock.now())  # the one rule: a future-dated backup is not the newest
    if chosen is not None:
        age = ws.clock.now() - chosen.finished_at
        if age <= ws.stack.set_base_max_age:
            return chosen.backup_id, None
        say(f"the newest base backup {chosen.backup_id} is {age} old (sets.base_max_age): taking one")
    else:
        say("no base backup yet: taking one")
    progress.step(f"back up {pg.name} (postgres, {postgres_type}) into {ws.repo.location}")
    meter = progress.meter(f"backup of {pg.name}", total=backup_estimate(ws, pg))
    if postgres_type == "incremental":
        result = incremental_backup(ws, pg, progress=meter)
    else:
        result = base_backup(ws, pg, progress=meter)
    return result.manifest.backup_id, result


def _restore_point(ws: Workspace, pg: Service, name: str) -> tuple[Lsn, int]:
    """Create the named restore point and wait until the WAL holding it is captured; its
    position and timeline (a later PITR may leave that branch: the restore follows it)."""
    dsn = service_dsn(pg)
    timeline = _timeline(dsn)
    stream = pg.postgres is not None and pg.postgres.wal_mode is WalMode.STREAM
    if not stream:  # close the segment holding it and wait until the repository has it
        switched = switch_wal_and_wait(ws, pg, restore_point=name)
        return Lsn.parse(str(switched.restore_point_lsn)), timeline
    with connect(dsn) as conn:
        row = conn.execute("select pg_create_restore_point(%s)::text", (name,)).fetchone()
        if row is None:
            raise OperationError(f"pg_create_restore_point({name!r}) returned nothing")
        lsn = Lsn.parse(row[0])
        flushed = "select coalesce(max(flush_lsn) >= %s::pg_lsn, false) from pg_stat_replication"
        wait_for(
            lambda: bool(conn.execute(flushed, (str(lsn),)).fetchone()[0]),  # type: ignore[index]
            timeout=120,
            what="the WAL receiver to flush the restore point",
        )
        return lsn, timeline


def _timeline(dsn: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(
            "select ('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int"
        ).fetchone()
        return int(row[0]) if row else 1
