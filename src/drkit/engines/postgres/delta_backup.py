"""drkit's incremental backup below PostgreSQL 17 (which has none of its own): the blocks of
every relation whose page LSN is after the parent's start, read from the data directory
between `pg_backup_start` and `pg_backup_stop` (adapters/postgres/delta_scan.py), stored as a
tar stream in parts like a base backup, in PostgreSQL 17's incremental file format.

Chosen by measurement over a file-level incremental (whole files changed since the parent,
as pgBackRest's `--type=incr`): on a chat database growing 2 % a day, the few large relation
files change every day, so a file-level incremental stores most of the database again
(docs/postgres.md, "Incremental backups", has the figures).

The backup_label names the parent's start (`INCREMENTAL FROM LSN`), as PostgreSQL 17's does:
the restore checks each link against it, then drops those lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, replace

from drkit import __version__
from drkit.adapters.postgres.basebackup import StreamedBackup
from drkit.adapters.postgres.client import service_dsn
from drkit.adapters.postgres.delta_scan import DeltaScan, Seen
from drkit.adapters.postgres.lowlevel import BackupSession, backup_session
from drkit.adapters.postgres.server import next_xid, server_info
from drkit.adapters.postgres.tarindex import TarIndexer
from drkit.domain.backup import BackupKind, Manifest
from drkit.domain.errors import IntegrityError, OperationError
from drkit.domain.stack import Service
from drkit.domain.wal import Lsn
from drkit.engines.core.commit import (
    BackupResult,
    Progress,
    clean_incomplete,
    part_sink,
    put_small,
    unique_id,
)
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.backup import BaseTaken, _policy, commit_base_backup
from drkit.engines.postgres.delta_source import data_dir_of
from drkit.engines.postgres.tar_restore import get_checked
from drkit.infra.parts import split_into_parts

METHOD = "delta"
SEEN = "delta-seen.json"  # what the scan saw (sizes, modification times): the next delta's shortcut


def _parent_seen(ws: Workspace, parent: Manifest) -> Seen | None:
    """What the parent's scan saw, when the parent is a delta (a full backup records none)."""
    name = SEEN + ws.codec.suffix
    try:
        stored = parent.file(name)
    except KeyError:
        return None
    directory = backup_dir(ws.stack.name, parent.service, parent.backup_id)
    raw = ws.codec.decode(get_checked(ws.repo, directory, stored, what="delta record"), name=name)
    try:
        return Seen.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{name} of {parent.backup_id} is unreadable ({exc})") from exc


def take_delta_backup(
    ws: Workspace,
    service: Service,
    parent: Manifest,
    *,
    progress: Progress | None = None,
    method: str = "block",
) -> BackupResult:
    """A delta on `parent`, under the service's backup lock (held by the caller)."""
    policy = _policy(service)
    ws = replace(ws, codec=replace(ws.codec, level=policy.compress_level))
    dsn = service_dsn(service)
    removed = clean_incomplete(ws, service.name)
    info = server_info(dsn)
    started = ws.clock.now()
    backup_id = unique_id(ws, service.name, BackupKind.BASE, started, label="delta")
    directory = backup_dir(ws.stack.name, service.name, backup_id)
    xid_before = next_xid(dsn)
    pg = parent.require_postgres()
    scan = DeltaScan(
        data_dir_of(service, info),
        Lsn.parse(pg.start_lsn).value,
        block_size=int(info.settings.get("block_size", "8192")),
        method=method,
        parent_seen=_parent_seen(ws, parent),
    )
    streamed = _stream_scan(ws, service, scan, directory, backup_id, pg.start_lsn, progress)
    seen = put_small(ws, directory, SEEN, scan.seen.to_json())
    tools = {"drkit delta": __version__}
    taken = BaseTaken(backup_id, started, streamed, info, tools, xid_before, extra=(seen,))
    details = {
        "format": "tar stream split in parts; relation files as INCREMENTAL.<name> (PostgreSQL 17's format)",
        "delta": {"method": method, "since_lsn": pg.start_lsn, **asdict(scan.report)},
    }
    manifest = commit_base_backup(ws, service, taken, parent=parent, method=METHOD, details=details)
    return BackupResult(manifest, removed)


def _stream_scan(
    ws: Workspace,
    service: Service,
    scan: DeltaScan,
    directory: str,
    backup_id: str,
    since: str,
    progress: Progress | None,
) -> StreamedBackup:
    """The scan, between pg_backup_start and pg_backup_stop, stored as parts."""
    policy = _policy(service)
    indexer = TarIndexer(capture=frozenset({"backup_label"}))
    with backup_session(
        service_dsn(service), f"drkit {backup_id}", fast=policy.checkpoint == "fast"
    ) as session:
        parts, total = split_into_parts(
            _Reader(_stream(scan, session, since)).read,
            part_sink(ws, directory, "base", ".tar"),
            part_size=policy.part_size,
            parallel=policy.parallel,
            observe=indexer.feed,
            progress=progress,
        )
    if session.stopped is None:
        raise OperationError("the delta backup ended before pg_backup_stop")
    start, timeline = _label_start(bytes(indexer.captured.get("backup_label", b"")))
    stop = Lsn.parse(session.stopped.stop_lsn)
    return StreamedBackup(start, stop, timeline, tuple(indexer.members), tuple(parts), total)


def _stream(scan: DeltaScan, session: BackupSession, since: str) -> Iterator[bytes]:
    """The data directory's changes, then (after pg_backup_stop) the backup_label naming the parent."""
    yield from scan.chunks()
    stopped = session.stop()
    _start, timeline = _label_start(stopped.label)
    label = stopped.label + f"INCREMENTAL FROM LSN: {since}\nINCREMENTAL FROM TLI: {timeline}\n".encode()
    yield from scan.end(label, stopped.tablespace_map)


def _label_start(label: bytes) -> tuple[Lsn, int]:
    from drkit.adapters.postgres.basebackup import LABEL_START_RE, LABEL_TLI_RE

    text = label.decode(errors="replace")
    start, tli = LABEL_START_RE.search(text), LABEL_TLI_RE.search(text)
    if not start or not tli:
        raise OperationError("pg_backup_stop returned a backup_label without its start")
    return Lsn.parse(start.group(1)), int(tli.group(1))


class _Reader:
    """`read(n)` over a stream of chunks, as split_into_parts reads a tool's stdout."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pending = bytearray()

    def read(self, n: int) -> bytes:
        while len(self.pending) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.pending += chunk
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out
