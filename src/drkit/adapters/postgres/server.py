"""What a backup records about the server, and the settings `drkit check` looks at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drkit.adapters.postgres.client import connect


@dataclass(frozen=True)
class ServerInfo:
    version_num: int
    version: str
    system_identifier: str
    wal_segment_size: int
    timeline: int
    in_recovery: bool
    settings: dict[str, str]


SETTINGS = (
    "wal_level",
    "archive_mode",
    "archive_command",
    "archive_timeout",
    "max_wal_senders",
    "max_replication_slots",
    "data_checksums",
    "data_directory",
    "wal_keep_size",
    "summarize_wal",  # 17+: what pg_basebackup --incremental needs
    "block_size",
)


def server_info(dsn: str) -> ServerInfo:
    with connect(dsn) as conn:

        def one(sql: str, params: tuple[Any, ...] = ()) -> Any:
            row = conn.execute(sql, params).fetchone()
            return row[0] if row else None

        settings = {
            name: str(value)
            for name, value in conn.execute(
                "select name, setting from pg_settings where name = any(%s)", (list(SETTINGS),)
            ).fetchall()
        }
        return ServerInfo(
            version_num=int(one("show server_version_num")),
            version=str(one("select version()")),
            system_identifier=str(one("select system_identifier from pg_control_system()")),
            wal_segment_size=int(
                one("select setting::bigint from pg_settings where name = 'wal_segment_size'")
            ),
            timeline=int(one("select timeline_id from pg_control_checkpoint()")),
            in_recovery=bool(one("select pg_is_in_recovery()")),
            settings=settings,
        )


def next_xid(dsn: str) -> int:
    """The first unassigned transaction id: unchanged between two reads means no writes."""
    with connect(dsn) as conn:
        row = conn.execute("select pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
        return int(row[0]) if row else 0
