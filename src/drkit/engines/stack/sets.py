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
from drkit.adapters.postgres.server import server_info
from drkit.domain.backup import BackupKind
from drkit.domain.errors import OperationError, RepositoryError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.sets import RestoreSet, new_set_id
from drkit.domain.stack import Service, WalMode
from drkit.domain.wal import Lsn, Segment
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.registry import has_engine
from drkit.engines.core.set_refs import set_key
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.backup import base_backup
from drkit.engines.postgres.wal.archive import archive_for
from drkit.engines.stack.backup import backup_service
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


def backup_set(ws: Workspace, *, say: Say, drkit_argv: list[str], progress: Progress = SILENT) -> RestoreSet:
    del drkit_argv  # restores need it; taking a set does not
    services = ordered_services(ws)
    postgres = [s for s in services if s.kind == "postgres"]
    if len(postgres) != 1:
        raise OperationError("a stack-wide set needs exactly one PostgreSQL service")
    pg = postgres[0]
    with locks.exclusive(ws.lock_dir, "stack-set"):
        base = _base_backup_for_set(ws, pg, say)
        created = ws.clock.now()
        set_id = new_set_id(created)
        point = f"drkit-{set_id}"
        progress.step(f"create the PostgreSQL restore point {point} and wait for its WAL")
        lsn = _restore_point(ws, pg, point)
        say(f"PostgreSQL restore point {point} at {lsn}")
        backups = {pg.name: base}
        for service in services:
            if service.kind == "postgres":
                continue
            progress.step(f"back up {service.name} ({service.kind})")
            result = backup_service(ws, service, progress=progress.meter(f"backup of {service.name}"))
            backups[service.name] = result.manifest.backup_id
            say(f"{service.name}: {result.manifest.backup_id}")
        record = RestoreSet(set_id, ws.stack.name, created, point, str(lsn), backups, ws.clock.now())
        try:
            ws.repo.put(set_key(ws.stack.name, set_id), record.to_json(), overwrite=False)
        except FileExistsError as exc:
            raise RepositoryError(f"set {set_id} already exists") from exc
        return record


def _base_backup_for_set(ws: Workspace, pg: Service, say: Say) -> str:
    listing = list_backups(ws.repo, ws.stack.name, pg.name)
    bases = [m for m in listing.complete if m.kind is BackupKind.BASE]
    if bases:
        return bases[-1].backup_id
    say("no base backup yet: taking one")
    return base_backup(ws, pg).manifest.backup_id


def _restore_point(ws: Workspace, pg: Service, name: str) -> Lsn:
    """Create the named restore point and wait until the WAL holding it is captured."""
    dsn = service_dsn(pg)
    with connect(dsn) as conn:
        row = conn.execute("select pg_create_restore_point(%s)::text", (name,)).fetchone()
        if row is None:
            raise OperationError(f"pg_create_restore_point({name!r}) returned nothing")
        lsn = Lsn.parse(row[0])
        stream = pg.postgres is not None and pg.postgres.wal_mode is WalMode.STREAM
        if stream:
            flushed = "select coalesce(max(flush_lsn) >= %s::pg_lsn, false) from pg_stat_replication"
            wait_for(
                lambda: bool(conn.execute(flushed, (str(lsn),)).fetchone()[0]),  # type: ignore[index]
                timeout=120,
                what="the WAL receiver to flush the restore point",
            )
            return lsn
        conn.execute("select pg_switch_wal()")
    size = server_info(dsn).wal_segment_size
    timeline = _timeline(dsn)
    segment = Segment.containing(lsn, timeline, size).name
    archive = archive_for(ws, pg)
    wait_for(
        lambda: archive.find(segment) is not None,
        timeout=120,
        what=f"WAL segment {segment} (holding the restore point) to be archived",
    )
    return lsn


def _timeline(dsn: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute(
            "select ('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int"
        ).fetchone()
        return int(row[0]) if row else 1
