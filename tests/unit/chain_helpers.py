"""Chains of base backups stored as drkit stores them (parts, tar index, manifest), for the
chain restore's tests."""

from __future__ import annotations

import io
import tarfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from drkit.adapters.postgres.incremental_file import IncrementalHeader
from drkit.adapters.postgres.tarindex import TarIndexer, members_to_json
from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.backup import BackupKind, Manifest, PostgresInfo, StoredFile
from drkit.engines.core.layout import backup_dir
from drkit.infra.parts import split_into_parts

BS = 8192
T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
Entries = list[tuple[str, bytes | None]]  # (name, data) in stream order; data None: a directory


def block(tag: int) -> bytes:
    return bytes([tag % 256]) * BS


def incremental(blocks: dict[int, bytes], truncate: int) -> bytes:
    return IncrementalHeader(tuple(blocks), truncate, BS).encode() + b"".join(blocks.values())


def tar_of(entries: Entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o700
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o600
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def label(start: int, parent_start: int | None) -> bytes:
    text = f"START WAL LOCATION: 0/{start:X} (file 000000010000000000000001)\nSTART TIMELINE: 1\n"
    if parent_start is not None:
        text += f"INCREMENTAL FROM LSN: 0/{parent_start:X}\nINCREMENTAL FROM TLI: 1\n"
    return text.encode()


def start_of(m: Manifest) -> int:
    return int(m.require_postgres().start_lsn[2:], 16)


def store(
    repo: FsRepository,
    day: int,
    entries: Entries | dict[str, bytes],
    parent: Manifest | None,
    *,
    part_size: int = BS,
    with_label: bool = True,
) -> Manifest:
    """Day `day`'s base backup (incremental on `parent` if given), its backup_label first."""
    backup_id = f"2026112{2 + day}T020000Z-{'incr' if parent else 'base'}"
    directory = backup_dir("demo", "postgres", backup_id)
    codec, indexer = Codec(), TarIndexer()

    def sink(index: int, raw: bytes) -> StoredFile:
        stored = codec.encode(raw)
        name = f"base.{index:05d}.tar.zst"
        repo.put(f"{directory}/{name}", stored, overwrite=False)
        return StoredFile(name, len(stored), sha256(stored), len(raw))

    start = 0x1000028 * (day + 1)
    listed: Entries = list(entries.items()) if isinstance(entries, dict) else list(entries)
    if with_label:
        listed.insert(0, ("backup_label", label(start, parent and start_of(parent))))
    stream = tar_of(listed)
    parts, _ = split_into_parts(
        io.BytesIO(stream).read, sink, part_size=part_size, parallel=2, observe=indexer.feed
    )
    raw_index = members_to_json(indexer.members)
    index = codec.encode(raw_index)
    repo.put(f"{directory}/tarindex.json.zst", index)
    files = (*parts, StoredFile("tarindex.json.zst", len(index), sha256(index), len(raw_index)))
    pg = PostgresInfo(f"0/{start:X}", f"0/{start + 0x100:X}", 1, 16 << 20, 150000, "7001")
    if parent is not None:
        pp = parent.require_postgres()
        pg = replace(pg, incremental="delta", parent=parent.backup_id, chain=(*pp.chain, parent.backup_id))
    at = T0 + timedelta(days=day)
    return Manifest(backup_id, "demo", "postgres", BackupKind.BASE, at, at, files, {}, postgres=pg)
