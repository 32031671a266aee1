"""PostgreSQL's low-level (non-exclusive) backup API, for a copy drkit reads from the data
directory itself: `pg_backup_start` (15+; `pg_start_backup(label, fast, false)` before) in one
session, the files copied, then `pg_backup_stop` in the same session returns the stop LSN
and the backup_label (and tablespace_map) the copy must hold. A session that ends without
the stop (drkit killed, an error) aborts the backup on the server.
"""

from __future__ import annotations

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

    def stop(self) -> Stopped:
        sql = (
            "select lsn::text, labelfile, spcmapfile from pg_backup_stop(true)"
            if self.version >= 150000
            else "select lsn::text, labelfile, spcmapfile from pg_stop_backup(false, true)"
        )
        try:
            row = self.conn.execute(sql).fetchone()
        except psycopg.Error as exc:
            raise OperationError(f"pg_backup_stop failed: {str(exc).strip().splitlines()[0]}") from exc
        if row is None:
            raise OperationError("pg_backup_stop returned nothing")
        self.stopped = Stopped(str(row[0]), str(row[1]).encode(), str(row[2] or "").encode())
        return self.stopped


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
