"""A repository with a made-up history (base backups, dumps, WAL, sets) for retention tests
that need no database: the files are small, the manifests and WAL names are real."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.backup import BackupKind, Manifest, PostgresInfo, StoredFile
from drkit.domain.sets import RestoreSet
from drkit.domain.stack import PostgresPolicy, RepositorySpec, Retention, RuntimeSpec, Service, Stack
from drkit.domain.wal import Lsn, Segment
from drkit.engines.core.layout import backup_dir, manifest_key
from drkit.engines.core.set_refs import set_key
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.wal.archive import WalArchive

SIZE = 16 * 1024 * 1024
T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
STACK = "t"


@dataclass
class FixedClock:
    at: datetime

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def make_stack(root: Path, retention: Retention, wal_retention: timedelta) -> Stack:
    service = Service(
        "postgres",
        "postgres",
        RuntimeSpec("local"),
        postgres=PostgresPolicy(wal_retention=wal_retention),
        retention=retention,
    )
    repo = RepositorySpec("main", "fs", path=str(root / "repo"))
    return Stack(STACK, {"postgres": service}, {"main": repo}, "main", state_dir=str(root / "state"))


def workspace(stack: Stack, now: datetime) -> Workspace:
    assert stack.repository.path is not None
    return Workspace(stack, FsRepository(stack.repository.path), Codec(), FixedClock(now))


def add_base(ws: Workspace, day: int, start: int, stop: int, *, kind: BackupKind = BackupKind.BASE) -> str:
    """A backup finished on day `day` (02:00 UTC); base backups span WAL segments start..stop."""
    finished = T0 + timedelta(days=day)
    backup_id = f"{finished:%Y%m%dT%H%M%S}Z-{kind.value}"
    raw = f"{backup_id} data".encode()
    name = "base.00000.tar.zst"
    ws.repo.put(f"{backup_dir(STACK, 'postgres', backup_id)}/{name}", raw)
    pg = None
    if kind is BackupKind.BASE:
        pg = PostgresInfo(
            start_lsn=str(Segment(1, start, SIZE).start),
            stop_lsn=str(Lsn(Segment(1, stop, SIZE).start.value + 0x100)),
            timeline=1,
            wal_segment_size=SIZE,
            server_version=150000,
            system_identifier="7",
        )
    manifest = Manifest(
        backup_id,
        STACK,
        "postgres",
        kind,
        finished - timedelta(minutes=1),
        finished,
        (StoredFile(name, len(raw), hashlib.sha256(raw).hexdigest(), len(raw)),),
        {},
        postgres=pg,
    )
    ws.repo.put(manifest_key(STACK, "postgres", backup_id), manifest.to_json())
    return backup_id


def add_wal(ws: Workspace, numbers: range) -> None:
    archive = WalArchive(ws.repo, STACK, "postgres", ws.codec)
    for n in numbers:
        archive.push_bytes(Segment(1, n, SIZE).name, f"segment {n}".encode())


def add_set(ws: Workspace, backup_id: str, day: int, until: int) -> str:
    at = T0 + timedelta(days=day, hours=1)
    s = RestoreSet(
        f"{at:%Y%m%dT%H%M%S}Z-set",
        STACK,
        at,
        "rp",
        str(Segment(1, until, SIZE).start),
        {"postgres": backup_id},
        at,
    )
    ws.repo.put(set_key(STACK, s.set_id), s.to_json())
    return s.set_id


def wal_numbers(ws: Workspace) -> set[int]:
    names = WalArchive(ws.repo, STACK, "postgres", ws.codec).names()
    return {Segment.parse(n, SIZE).number for n in names if len(n) == 24}


def month(ws: Workspace, days: int = 40) -> list[str]:
    """A base backup every day, WAL segments 10*day .. 10*day+9, one logical dump a week."""
    ids = []
    for day in range(days):
        ids.append(add_base(ws, day, 10 * day, 10 * day + 1))
        if day % 7 == 3:
            add_base(ws, day, 0, 0, kind=BackupKind.LOGICAL)
    add_wal(ws, range(0, 10 * days))
    return ids
