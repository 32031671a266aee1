"""Check everything a PostgreSQL restore will read before any service is stopped.

The tar index is read and checked against its SHA-256 (it is small, and the extraction needs
it anyway); every part of the base backup (an incremental: of every link of its chain) is
present in the repository with the stored size the manifest records; every WAL file the plan
replays (each segment on the timeline path from the backup's start to the plan's last
segment, the partial tail, the history files of the path's timelines) is present and not
empty. The parts' hashes are checked as they stream during the extraction (tar_restore), so
the restore does not read the backup twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from drkit.adapters.postgres.tarindex import Member
from drkit.domain.backup import StoredFile
from drkit.domain.errors import DrkitError, IntegrityError, RepositoryError
from drkit.domain.stack import Service
from drkit.domain.wal import Segment, segment_on_path
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.backup import TAR_INDEX
from drkit.engines.postgres.plan import RestorePlan
from drkit.engines.postgres.tar_restore import read_index
from drkit.engines.postgres.wal.archive import archive_for


@dataclass(frozen=True)
class Checked:
    """What the preflight read and checked: the extraction uses it as it is."""

    members: list[Member]
    parts: list[StoredFile]
    wal: tuple[str, ...]


def check_inputs(ws: Workspace, service: Service, chosen: RestorePlan) -> Checked:
    """Everything the restore will read, or an error naming the first file that fails
    (nothing is touched either way). An incremental: every link of its chain."""
    m = chosen.backup
    refused = f"restore of {m.backup_id} refused before anything was stopped or written"
    try:
        members: list[Member] = []
        parts: list[StoredFile] = []
        for link in chosen.links:  # the full one first; `m` last
            directory = backup_dir(ws.stack.name, service.name, link.backup_id)
            members = read_index(ws.repo, ws.codec, directory, link, TAR_INDEX + ws.codec.suffix)
            parts = [f for f in link.files if f.name.startswith("base.")]
            if not parts:
                raise IntegrityError(f"the manifest of {link.backup_id} lists no part of the base backup")
            for part in parts:
                _check_part(ws, directory, part, link.backup_id if link is not m else None)
        wal = check_wal(ws, service, chosen)
    except DrkitError as exc:
        exc.message = f"{refused}: {exc.message}"
        raise
    except OSError as exc:
        raise RepositoryError(f"{refused}: cannot read {ws.repo.location}: {exc.strerror or exc}") from exc
    return Checked(members, parts, wal)


def _check_part(ws: Workspace, directory: str, part: StoredFile, link: str | None) -> None:
    """`link`: the earlier backup of an incremental's chain that holds the part."""
    key = f"{directory}/{part.name}"
    name = f"{part.name} of {link} (in the chain)" if link else part.name
    try:
        size = ws.repo.size(key)
    except FileNotFoundError as exc:
        raise IntegrityError(f"backup file {name} is missing from {ws.repo.location}") from exc
    if size != part.size:
        raise IntegrityError(
            f"backup file {name} is {size} bytes in {ws.repo.location}; the manifest says {part.size}"
        )


def needed_wal(chosen: RestorePlan) -> list[str]:
    """The WAL file names recovery reads for this plan, in order."""
    pg = chosen.backup.require_postgres()
    size = pg.wal_segment_size
    first = Segment.parse(chosen.first_segment, size)
    path = chosen.path
    # Recovery reads the history of the timeline it follows (all its ancestry is in it).
    names = [f"{path[-1].timeline:08X}.history"] if len(path) > 1 else []
    if chosen.last_segment is None:
        return names
    last = Segment.parse(chosen.last_segment, size)
    for number in range(first.number, last.number + 1):
        segment = segment_on_path(path, number, size) if path else Segment(first.timeline, number, size)
        partial = chosen.uses_partial and number == last.number
        names.append(segment.name + (".partial" if partial else ""))
    return names


def check_wal(ws: Workspace, service: Service, chosen: RestorePlan) -> tuple[str, ...]:
    """Every WAL file of the plan present (one listing of the archive) and not empty."""
    sizes = archive_for(ws, service).stored_sizes()
    names = needed_wal(chosen)
    for name in names:
        if name not in sizes:
            raise IntegrityError(
                f"WAL file {name} is missing from the archive in {ws.repo.location}; the restore needs it"
            )
        if sizes[name] == 0:
            raise IntegrityError(f"WAL file {name} in the archive is empty; the restore needs it")
    return tuple(names)
