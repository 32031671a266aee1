"""Physical base backups with pg_basebackup, streamed and cut into parallel parts.

`pg_basebackup -D - -F tar -X none` writes one tar stream to stdout. We index its members as
it passes and cut it into fixed-size parts; each part is compressed (and encrypted) and
stored by a pool of worker threads (zstd and hashlib release the GIL). Memory stays bounded:
at most `parallel + 1` parts are in flight. WAL is not included: the archive provides it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from drkit.adapters.postgres.client import ToolLogin
from drkit.adapters.postgres.tarindex import Member, TarIndexer
from drkit.domain.backup import StoredFile
from drkit.domain.errors import ToolError
from drkit.domain.wal import Lsn
from drkit.infra.parts import split_into_parts
from drkit.infra.proc import stream_tool

LABEL_START_RE = re.compile(r"START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+)")
LABEL_TLI_RE = re.compile(r"START TIMELINE: (\d+)")

PartSink = Callable[[int, bytes], StoredFile]


@dataclass(frozen=True)
class StreamedBackup:
    start_lsn: Lsn
    stop_lsn: Lsn
    timeline: int
    members: tuple[Member, ...]
    parts: tuple[StoredFile, ...]
    raw_bytes: int


def pg_basebackup_args(
    login: ToolLogin, bin_dir: str | None, checkpoint: str, label: str, max_rate: str | None = None
) -> list[str]:
    rate = [f"--max-rate={max_rate}"] if max_rate else []
    return [
        login.tool("pg_basebackup", bin_dir),
        *rate,
        "--dbname",
        login.dsn,
        "--pgdata",
        "-",
        "--format",
        "tar",
        "--wal-method",
        "none",
        f"--checkpoint={checkpoint}",
        "--label",
        label,
        "--no-password",
        "--verbose",
    ]


def stream_base_backup(
    args: list[str],
    sink: PartSink,
    *,
    login: ToolLogin,
    part_size: int,
    parallel: int,
    timeout: float,
    progress: Callable[[int], None] | None = None,
) -> StreamedBackup:
    """Run pg_basebackup, cut its stdout into parts and hand each to `sink` in a worker."""
    indexer = TarIndexer(capture=frozenset({"backup_label", "backup_manifest"}))
    parts, total = stream_tool(
        args,
        lambda read: split_into_parts(
            read, sink, part_size=part_size, parallel=parallel, observe=indexer.feed, progress=progress
        ),
        timeout=timeout,
        env=login.env,
        explain=damaged_pages,
    )
    start_lsn, stop_lsn, timeline = wal_range(indexer)
    return StreamedBackup(
        start_lsn=start_lsn,
        stop_lsn=stop_lsn,
        timeline=timeline,
        members=tuple(indexer.members),
        parts=tuple(parts),
        raw_bytes=total,
    )


CHECKSUM_RE = re.compile(r'checksum verification failed in file "([^"]+)", block (\d+)')


def damaged_pages(stderr: str) -> str:
    """The files whose pages failed the server's checksum check while it sent them."""
    found = [f"{m.group(1)} block {m.group(2)}" for m in CHECKSUM_RE.finditer(stderr)]
    if not found:
        return ""
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f" (data page checksum failures: {', '.join(found[:5])}{more}; the live cluster is damaged)"


def wal_range(indexer: TarIndexer) -> tuple[Lsn, Lsn, int]:
    """Start LSN, stop LSN and timeline, from backup_label and the backup_manifest's WAL-Ranges."""
    label = bytes(indexer.captured.get("backup_label", b"")).decode(errors="replace")
    start = LABEL_START_RE.search(label)
    tli = LABEL_TLI_RE.search(label)
    if not start or not tli:
        raise ToolError("pg_basebackup's output holds no backup_label: is the server PostgreSQL 13+?")
    try:
        manifest = json.loads(bytes(indexer.captured["backup_manifest"]))
        ranges = manifest["WAL-Ranges"]
        stop = Lsn.parse(ranges[-1]["End-LSN"])
    except (KeyError, ValueError, IndexError) as exc:
        raise ToolError("pg_basebackup's output holds no usable backup_manifest") from exc
    return Lsn.parse(start.group(1)), stop, int(tli.group(1))
