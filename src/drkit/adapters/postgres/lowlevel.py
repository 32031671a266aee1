"""PostgreSQL's low-level (non-exclusive) backup API, for a copy drkit reads from the data
directory itself: `pg_backup_start` (15+; `pg_start_backup(label, fast, false)` before) in one
session, the files copied, then `pg_backup_stop` in the same session returns the stop LSN
and the backup_label (and tablespace_map) the copy must hold. A session that ends without
the stop (drkit killed, an error) aborts the backup on the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from drkit.adapters.postgres.client import connect
from drkit.domain.errors import OperationError


@dataclass(frozen=True)
class Stopped:
    stop_lsn: str
    label: bytes
    tablespace_map: bytes


class BackupSession:
    """A started low-level backup; `stop()` ends it (once)."""

    def __init__(self, conn: psycopg.Connection[Any], version: int) -> None:
        self.conn, self.version = conn, version
        self.stopped: Stopped | None = None

    def stop(self, *, archive_timeout: float = 3600.0) -> Stopped:
        """End the backup; return once the WAL it needs is archived (archive mode). The server
        would wait itself, but checks only once a second: drkit polls instead."""
        sql = (
            "select lsn::text, labelfile, spcmapfile from pg_backup_stop(false)"
            if self.version >= 150000
            else "select lsn::text, labelfile, spcmapfile from pg_stop_backup(false, false)"
        )
        try:
            row = self.conn.execute(sql).fetchone()
        except psycopg.Error as exc:
            raise OperationError(f"pg_backup_stop failed: {str(exc).strip().splitlines()[0]}") from exc
        if row is None:
            raise OperationError("pg_backup_stop returned nothing")
        self.stopped = Stopped(str(row[0]), str(row[1]).encode(), str(row[2] or "").encode())
        self._wait_archived(self.stopped.stop_lsn, archive_timeout)
        return self.stopped

    def _wait_archived(self, stop_lsn: str, timeout: float) -> None:
        """The last segment holding the backup's WAL archived (pg_walfile_name names the one
        before a segment boundary, as pg_backup_stop's own wait does)."""
        row = self.conn.execute(
            "select current_setting('archive_mode'), pg_walfile_name(%s::pg_lsn)", (stop_lsn,)
        ).fetchone()
        if row is None or row[0] == "off":
            return  # not archived by the server (streamed WAL): nothing to wait for here
        segment = str(row[1])
        deadline = time.monotonic() + timeout
        while True:
            done = self.conn.execute("select last_archived_wal from pg_stat_archiver").fetchone()
            if done and done[0] and str(done[0]) >= segment:
                return
            if time.monotonic() > deadline:
                raise OperationError(
                    f"WAL segment {segment}, the end of the backup, was not archived within "
                    f"{timeout:.0f}s: check archive_command (pg_stat_archiver)"
                )
            time.sleep(0.05)


@contextmanager
def backup_session(dsn: str, label: str, *, fast: bool) -> Iterator[BackupSession]:
    """A low-level backup started (a checkpoint first: `fast` asks for it at once)."""
    with connect(dsn) as conn:
        row = conn.execute("show server_version_num").fetchone()
        version = int(row[0]) if row else 0
        start = (
            "select pg_backup_start(%s, %s)" if version >= 150000 else "select pg_start_backup(%s, %s, false)"
        )
        try:
            conn.execute(start, (label, fast))
        except psycopg.Error as exc:
            raise OperationError(f"pg_backup_start failed: {str(exc).strip().splitlines()[0]}") from exc
        yield BackupSession(conn, version)
