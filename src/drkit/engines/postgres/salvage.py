"""Save what a stopped or crashed server's pg_wal holds before an in-place restore moves its
data directory aside: nothing committed may stay behind in the old directory.

Every WAL segment in pg_wal that this cluster wrote (its first page names this segment's
position and the cluster's system identifier; recycled and preallocated files do not) and
that the plan's range reaches is compared with the archive by SHA-256: what the archive
lacks is pushed (segments marked `.ready`, those marked `.done` whose archived copy is gone,
those of a server that archived nothing), a differing copy is an error naming it; the
newest one, which the server was writing, goes in as `NAME.partial` (recovery is served a
partial in place of the segment). History files the archive lacks are pushed too.

A data directory drkit was restoring (recovery.signal, or the isolated start of a restore)
holds only WAL that came from the archive: nothing to save there.
"""

from __future__ import annotations

import os
import shlex
import struct
from dataclasses import dataclass
from pathlib import Path

from drkit.domain.errors import DrkitError, OperationError
from drkit.domain.stack import Service
from drkit.domain.wal import HISTORY_RE, PARTIAL_RE, SEGMENT_RE, Segment
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.isolation import restore_in_progress
from drkit.engines.postgres.wal.archive import WalArchive, archive_for
from drkit.engines.postgres.wal.identity import read_data_dir

LONG_HEADER = struct.Struct("=HHIQI4xQII")  # XLogLongPageHeaderData
XLP_LONG_HEADER = 0x0002


@dataclass(frozen=True)
class Salvaged:
    pushed: tuple[str, ...] = ()
    already: int = 0  # already archived with the same content
    skipped: str | None = None  # why pg_wal was not read

    def describe(self) -> str:
        if self.skipped:
            return self.skipped
        pushed = (
            f"{len(self.pushed)} saved into the archive ({', '.join(self.pushed)})" if self.pushed else ""
        )
        return (
            "; ".join(
                p
                for p in (pushed, f"{self.already} already archived, same SHA-256" if self.already else "")
                if p
            )
            or "nothing in pg_wal that the archive lacks"
        )


def salvage_wal(
    ws: Workspace,
    service: Service,
    data_dir: Path,
    *,
    since: Segment | None,
    cluster: str | None = None,
    config_hint: str = "",
) -> Salvaged:
    """Push what the archive lacks from `data_dir`/pg_wal (see the module docstring); an
    error names every file that could not be saved and how to save it by hand. `cluster`:
    the system identifier of the backup being restored; a data directory of another cluster
    (a drill's fresh copy, a server initdb'd anew) holds no WAL of this archive's history."""
    pg_wal = data_dir / "pg_wal"
    if not pg_wal.is_dir():
        return Salvaged(skipped=f"no pg_wal in {data_dir}: nothing to save")
    if restore_in_progress(data_dir):
        return Salvaged(
            skipped=f"{data_dir} is a restore drkit had not finished: its WAL came from the archive"
        )
    local = read_data_dir(data_dir)
    own = local.system_identifier if local else None
    if cluster and own is not None and own != cluster:
        return Salvaged(
            skipped=f"{data_dir} holds another cluster (system identifier {own}; the backup's is "
            f"{cluster}): its WAL is not this archive's"
        )
    archive = archive_for(ws, service, local=local)  # as wal-push archives for this cluster
    segments = _written_segments(pg_wal, int(own) if own else None, since)
    pushed: list[str] = []
    already = 0
    failed: list[tuple[Path, str, str]] = []  # path, name to push as, why
    for path, as_name in _plan(pg_wal, segments, archive):
        try:
            stored = archive.push_bytes(as_name, path.read_bytes()).stored
        except (DrkitError, OSError) as exc:
            failed.append((path, as_name, exc.message if isinstance(exc, DrkitError) else str(exc)))
            continue
        if stored:
            pushed.append(as_name)
        else:
            already += 1
    if failed:
        raise _unsaved(service, failed, config_hint)
    return Salvaged(tuple(pushed), already)


def _plan(pg_wal: Path, segments: list[Segment], archive: WalArchive) -> list[tuple[Path, str]]:
    """(file, the name it is archived under), in order: history files the archive lacks,
    old timelines' partials it lacks, every written segment, the newest as a partial."""
    out: list[tuple[Path, str]] = []
    names = sorted(os.listdir(pg_wal))
    for name in names:
        lacking = (
            PARTIAL_RE.match(name) and archive.locate(name) is None and archive.locate(name[:24]) is None
        )
        if HISTORY_RE.match(name) or lacking:
            out.append((pg_wal / name, name))
    for i, segment in enumerate(segments):
        newest = i == len(segments) - 1
        if newest and not _status(pg_wal, segment.name) and archive.locate(segment.name) is None:
            out.append((pg_wal / segment.name, segment.name + ".partial"))  # being written
        else:
            out.append((pg_wal / segment.name, segment.name))
    return out


def _status(pg_wal: Path, name: str) -> str | None:
    for state in ("ready", "done"):
        if (pg_wal / "archive_status" / f"{name}.{state}").exists():
            return state
    return None


def _written_segments(pg_wal: Path, sysid: int | None, since: Segment | None) -> list[Segment]:
    """Segments this cluster (`sysid`) wrote at their own position (not recycled or
    preallocated files), from `since` on, by position."""
    found = []
    for name in os.listdir(pg_wal):
        if not SEGMENT_RE.match(name):
            continue
        try:
            with open(pg_wal / name, "rb") as fh:
                header = fh.read(LONG_HEADER.size)
                size = os.fstat(fh.fileno()).st_size
        except OSError:
            continue
        if len(header) < LONG_HEADER.size:
            continue
        _magic, info, _tli, pageaddr, _rem, file_sysid, seg_size, _blcksz = LONG_HEADER.unpack(header)
        if not info & XLP_LONG_HEADER or seg_size != size or seg_size <= 0:
            continue
        segment = Segment.parse(name, seg_size)
        if pageaddr != segment.start.value or (sysid is not None and file_sysid != sysid):
            continue
        if since is None or segment.number >= since.number:
            found.append(segment)
    return sorted(found, key=lambda s: (s.number, s.timeline))


def _unsaved(service: Service, failed: list[tuple[Path, str, str]], config_hint: str) -> OperationError:
    config = f" --config {shlex.quote(config_hint)}" if config_hint else ""
    commands = []
    for path, as_name, _why in failed:
        if as_name.endswith(".partial") and not path.name.endswith(".partial"):
            keep = f"/var/tmp/{as_name}"
            push = f"drkit{config} wal-push --service {service.name}"
            commands.append(f"cp {shlex.quote(str(path))} {keep} && {push} {keep}")
        else:
            push = f"drkit{config} wal-push --service {service.name}"
            commands.append(f"{push} {shlex.quote(str(path))}")
    names = ", ".join(as_name for _p, as_name, _w in failed)
    return OperationError(
        f"the old pg_wal of {service.name} holds WAL the archive lacks and drkit could not save it "
        f"({names}: {failed[0][2]}); restoring now would lose what it holds",
        hint="save them, then restore again: " + "; ".join(commands),
    )
