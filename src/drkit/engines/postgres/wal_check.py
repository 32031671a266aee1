"""Re-read archived WAL the way a restore will, without writing it anywhere.

`read_checked` is `wal-fetch` minus the write: the stored file is read, its zstd frame
decoded (the frame's checksum catches a flipped byte), the content compared with the
SHA-256 recorded at push time, and a full segment's size checked. `WalRehash` does that for
a list of names, each name at most once per run (several backups need the same WAL; `verify
--repo` checks every backup and then the whole archive), a few at a time. Verify uses it for
every segment a backup needs; it is meant to be reused wherever WAL must be checked before
it is relied on.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from drkit.domain.errors import DecryptionError, DrkitError, IntegrityError
from drkit.domain.wal import PARTIAL_RE, SEGMENT_RE
from drkit.engines.postgres.wal.archive import WalArchive

READERS = 4  # segments read at once: decoding and hashing release the GIL; S3 gets overlap


@dataclass(frozen=True)
class Checked:
    """What reading one archived WAL file found."""

    name: str
    problem: str | None = None  # why a restore could not use it; None: intact
    unread: bool = False  # encrypted and no age identity here: not checked
    hashed: bool = True  # False: no recorded SHA-256 (only the zstd frame and the size)


@dataclass(frozen=True)
class RehashReport:
    """The outcome for a list of names, in the order given."""

    names: tuple[str, ...]
    damaged: tuple[Checked, ...]  # in the order given: the first one is where a restore stops
    unread: tuple[str, ...]
    unhashed: int

    @property
    def checked(self) -> int:
        return len(self.names) - len(self.unread) - len(self.damaged)


def read_checked(archive: WalArchive, name: str, segment_size: int | None = None) -> tuple[bytes, bool]:
    """The raw content of archived `name` exactly as `wal-fetch` would hand it to PostgreSQL
    (`WalArchive.read`: the one check path, with the archive's identity, the signature when
    the repository signs, the recorded hash and the segment header), and whether a recorded
    hash vouched for it (without one, a full segment's size is checked when `segment_size` is
    known). Raises IntegrityError (absent, undecodable, unsigned where signatures are
    required, not its recorded hash, a segment of the wrong size), DecryptionError (no or
    wrong identity), RepositoryError."""
    raw = archive.read(name)
    if raw is None:
        raise IntegrityError(f"{name} is missing from the archive")
    recorded = None if PARTIAL_RE.match(name) else archive.recorded_hash(name)
    if recorded is None and segment_size and SEGMENT_RE.match(name) and len(raw) != segment_size:
        raise IntegrityError(f"{name} holds {len(raw)} bytes, not a whole {segment_size}-byte segment")
    return raw, recorded is not None


class WalRehash:
    """Checks archived WAL files, each at most once for the life of this object."""

    def __init__(self, archive: WalArchive, segment_size: int | None = None) -> None:
        self.archive = archive
        self.segment_size = segment_size
        self._seen: dict[str, Checked] = {}

    def check(self, names: Iterable[str]) -> RehashReport:
        wanted = tuple(dict.fromkeys(names))
        fresh = [n for n in wanted if n not in self._seen]
        if fresh:
            with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="wal-check") as pool:
                for found in pool.map(self._one, fresh):
                    self._seen[found.name] = found
        results = [self._seen[n] for n in wanted]
        return RehashReport(
            wanted,
            tuple(r for r in results if r.problem is not None),
            tuple(r.name for r in results if r.unread),
            sum(1 for r in results if not r.hashed and r.problem is None and not r.unread),
        )

    def _one(self, name: str) -> Checked:
        try:
            _raw, hashed = read_checked(self.archive, name, self.segment_size)
        except DecryptionError as exc:
            if not self.archive.codec.identity:
                return Checked(name, unread=True)
            return Checked(name, problem=exc.message)
        except DrkitError as exc:
            return Checked(name, problem=exc.message)
        return Checked(name, hashed=hashed)
