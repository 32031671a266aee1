"""The WAL archive: push (archive_command), fetch (restore_command), list, and the chain check.

Layout: `<stack>/<service>/wal/<timeline>/<name>.zst[.age]`, and beside each complete file
`<name>.sha256`: the SHA-256 of its raw content. Pushing the same segment twice succeeds; a
different file under an existing name is refused (the archive is append-only). The hash lets
a re-push be compared without the secret key (archive_command has only the public keys) and
lets a fetch refuse a damaged segment instead of handing PostgreSQL other bytes. With a
`sign_key` the sidecar is signed (engines/core/signing.py), so the hash a fetch compares
with is authenticated, and a fetch refuses a file without one.

`<stack>/<service>/wal/identity.json` says whose WAL the archive holds (wal/identity.py):
pushes of another cluster's WAL are refused, and a fetch answers "absent" only from an
archive it found present and this cluster's.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path

from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.port import Repository
from drkit.domain.errors import IntegrityError, OperationError, RepositoryError
from drkit.domain.stack import Service
from drkit.domain.wal import (
    HISTORY_RE,
    PARTIAL_RE,
    SEGMENT_RE,
    Segment,
    TimelineSpan,
    is_wal_file_name,
    parse_history,
    segment_on_path,
    timeline_of,
    timeline_path,
)
from drkit.engines.core.layout import wal_prefix
from drkit.engines.core.signing import SIGNATURE_SUFFIX, payload, requires_signatures
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.wal.identity import IdentityGuard, LocalCluster
from drkit.infra.atomic import temp_beside

SUFFIXES = (".zst", ".zst.age")
PARTIAL_KEYS = (".partial.zst", ".partial.zst.age")


@dataclass(frozen=True)
class PushResult:
    name: str
    key: str
    stored: bool  # False: the same content was already archived


class WalArchive:
    """One service's WAL archive. `local`: the cluster this process serves or archives for
    (read from its data directory), checked against the archive's identity and every
    segment's header; None when there is none (a restore's planning, a manual fetch)."""

    def __init__(
        self, repo: Repository, stack: str, service: str, codec: Codec, *, local: LocalCluster | None = None
    ) -> None:
        self.repo = repo
        self.prefix = wal_prefix(stack, service)
        self.codec = codec
        self.guard = IdentityGuard(repo, self.prefix, local)

    def for_cluster(self, local: LocalCluster | None) -> WalArchive:
        """The same archive, serving WAL to `local`."""
        served = copy.copy(self)
        served.guard = IdentityGuard(self.repo, self.prefix, local)
        return served

    def _key(self, name: str, suffix: str | None = None) -> str:
        return f"{self.prefix}{timeline_of(name):08X}/{name}{suffix or self.codec.suffix}"

    def find(self, name: str) -> str | None:
        for suffix in SUFFIXES:
            key = self._key(name, suffix)
            if self.repo.exists(key):
                return key
        return None

    def _hash_key(self, name: str) -> str:
        return f"{self.prefix}{timeline_of(name):08X}/{name}.sha256"

    def recorded_hash(self, name: str) -> str | None:
        """The SHA-256 recorded at push (authenticated first when the repository signs)."""
        try:
            raw = self.repo.get(self._hash_key(name))
        except FileNotFoundError:
            return None
        return payload(raw).decode(errors="replace").strip()

    # -- push ----------------------------------------------------------------------------

    def push_bytes(self, name: str, raw: bytes) -> PushResult:
        """Archive `name`. Of racing pushes of different content under one name exactly one
        wins: the one whose create of the `.sha256` sidecar succeeds (create-if-absent, the
        one atomic decision); only content with that hash is ever stored as the segment."""
        if not is_wal_file_name(name):
            raise OperationError(f"{name} is not a WAL file name")
        self.guard.admit(name, raw)
        if PARTIAL_RE.match(name):  # partials change in place; no sidecar would stay true
            key = self._key(name)
            self.repo.put(key, self.codec.encode(raw), overwrite=True)
            return PushResult(name, key, stored=True)
        digest = sha256(raw)
        existing = self.find(name)
        if existing:
            return self._same_as_archived(name, existing, digest)
        self._claim_name(name, digest)
        key = self._key(name)
        try:
            self.repo.put(key, self.codec.encode(raw), overwrite=False)
        except FileExistsError:  # a concurrent push of the same content got there first
            return self._same_as_archived(name, key, digest)
        if SEGMENT_RE.match(name):
            stale = self.find(name + ".partial")
            if stale:
                self._delete_key(stale)
        return PushResult(name, key, stored=True)

    def _claim_name(self, name: str, digest: str) -> None:
        """Record `digest` as the content of `name`, or check it against the one recorded (by a
        concurrent push, or by a push killed before its segment was stored)."""
        try:
            self.repo.put(self._hash_key(name), digest.encode(), overwrite=False)
        except FileExistsError:
            if self.recorded_hash(name) == digest:
                return
            if self.find(name) is not None:
                raise self._conflict(name) from None
            raise IntegrityError(
                f"another push of {name} with different content recorded its hash first and "
                f"is storing it (or was killed doing so); refusing to store this one",
                hint=f"if no other cluster archives into {self.repo.location}, delete "
                f"{self._hash_key(name)} and let the archiver retry",
            ) from None

    def _same_as_archived(self, name: str, existing: str, digest: str) -> PushResult:
        recorded = self.recorded_hash(name)
        if recorded is None:  # archived before hashes were kept: compare the content
            recorded = sha256(self.codec.decode(self.repo.get(existing), name=existing))
        if recorded != digest:
            raise self._conflict(name)
        return PushResult(name, existing, stored=False)

    @staticmethod
    def _conflict(name: str) -> IntegrityError:
        return IntegrityError(
            f"{name} is already archived with different content; refusing to overwrite "
            f"it (two clusters archiving into one repository?)"
        )

    def push(self, path: Path) -> PushResult:
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise OperationError(f"{path}: no such WAL file") from exc
        return self.push_bytes(path.name, raw)

    # -- fetch ---------------------------------------------------------------------------

    def locate(self, name: str) -> str | None:
        """The key that holds `name`, from a stat of each key it may have. None only when the
        repository answers "no such key"; any other failure (permission, I/O, network)
        raises, so it is never mistaken for the end of the archive."""
        for suffix in SUFFIXES:
            key = self._key(name, suffix)
            try:
                self.repo.size(key)
            except FileNotFoundError:
                continue
            return key
        return None

    def holds(self, name: str) -> bool:
        """Whether the archive (present, and this cluster's) holds `name`: a stat, no read."""
        self.guard.require_ours()
        if self.locate(name) is not None:
            return True
        self.guard.confirm_absent(name)
        return False

    def fetch(self, name: str, dest: Path) -> bool:
        """Write `name` to `dest`; False only if the archive (present, and this cluster's)
        does not hold it; every other outcome raises. See `read`."""
        raw = self.read(name)
        if raw is None:
            return False
        _write(dest, raw, name)
        return True

    def read(self, name: str) -> bytes | None:
        """The raw content of `name`, checked before anyone replays it: against the hash
        recorded at push (signed, and then required, when the repository signs), and a
        segment's header against the archive's identity and the local cluster. None only
        when the archive, found present, lacks it. A segment that only exists as `.partial`
        (the newest, from streaming) is served in its place."""
        if not is_wal_file_name(name):
            raise OperationError(f"{name!r} is not a WAL file name")
        self.guard.require_ours()
        key = self.locate(name)
        if key is None and SEGMENT_RE.match(name):
            key = self.locate(name + ".partial")
        if key is None:
            self.guard.confirm_absent(name)
            return None
        partial = key.endswith(PARTIAL_KEYS)
        raw = self.codec.decode(self._get(key, partial), name=key)
        if not partial:
            self._check_hash(name, raw)
        if SEGMENT_RE.match(name):
            self.guard.check_header(name, raw)
        return raw

    def _get(self, key: str, partial: bool) -> bytes:
        """The stored bytes; a signed partial is re-read when it changed between the reads of
        it and of its signature (the receiver rewrites it as it grows)."""
        for attempt in range(3):
            try:
                return self.repo.get(key)
            except FileNotFoundError as exc:
                raise RepositoryError(f"{key} is in the archive but could not be read: {exc}") from exc
            except IntegrityError:
                if not partial or attempt == 2:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_hash(self, name: str, raw: bytes) -> None:
        recorded = self.recorded_hash(name)
        if recorded is None and requires_signatures(self.repo):
            raise IntegrityError(
                f"archived {name} has no signed hash sidecar, and the repository requires "
                f"signatures; refusing to replay it"
            )
        if recorded is not None and recorded != sha256(raw):
            raise IntegrityError(f"archived {name} does not match its recorded SHA-256; it is damaged")

    def names(self) -> set[str]:
        """Every archived WAL file name (suffixes stripped)."""
        return {name for name in map(_archived_name, self.repo.list(self.prefix)) if name}

    def stored_sizes(self) -> dict[str, int]:
        """Every archived WAL file name with its stored size (one listing, nothing read)."""
        out: dict[str, int] = {}
        for entry in self.repo.entries(self.prefix):
            name = _archived_name(entry.key)
            if name:
                out[name] = entry.size
        return out

    def history(self, timeline: int) -> str | None:
        raw = self.read(f"{timeline:08X}.history") if self.find(f"{timeline:08X}.history") else None
        return None if raw is None else raw.decode()

    def timelines_from(self, timeline: int) -> list[int]:
        """Timelines descending from `timeline` (itself included), by their history files."""
        found = [timeline]
        for name in sorted(self.names()):
            if name.endswith(".history"):
                tli = timeline_of(name)
                text = self.history(tli) or ""
                if any(sw.parent in found for sw in parse_history(text)) and tli not in found:
                    found.append(tli)
        return sorted(found)

    def delete(self, name: str) -> None:
        key = self.find(name)
        if key:
            self._delete_key(key)
        self.repo.delete(self._hash_key(name))

    def _delete_key(self, key: str) -> None:
        """A WAL file and the signature of a signed partial (even when read without the key)."""
        self.repo.delete(key)
        if key.endswith(PARTIAL_KEYS) and self.repo.exists(key + SIGNATURE_SUFFIX):
            self.repo.delete(key + SIGNATURE_SUFFIX)


def _archived_name(key: str) -> str | None:
    """The WAL file name a stored key holds (suffixes stripped); None for anything else."""
    base = key.rsplit("/", 1)[-1]
    for suffix in SUFFIXES[::-1]:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return None


def _write(dest: Path, raw: bytes, name: str) -> None:
    """Write beside `dest`, then rename: PostgreSQL never sees a torn segment, and a failed
    write (a full disk) leaves no temporary file taking the space."""
    tmp: Path | None = None
    try:
        fd, tmp = temp_beside(dest)  # never a fixed name another user could plant a link at
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, dest)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise OperationError(f"cannot write {name} to {dest}: {exc.strerror or exc}") from exc


def archive_for(ws: Workspace, service: Service, *, local: LocalCluster | None = None) -> WalArchive:
    """The WAL archive of a PostgreSQL service in the workspace's repository; `local`: the
    cluster it serves WAL to (see WalArchive)."""
    return WalArchive(ws.repo, ws.stack.name, service.name, ws.codec, local=local)


@dataclass(frozen=True)
class ChainReport:
    """The contiguous run of segments from a start segment on one timeline."""

    first: Segment
    last: Segment | None  # None: not even the first is archived
    missing: Segment | None  # the first missing segment before a later archived one
    partial_tail: bool


def check_chain(names: set[str], start: Segment, until: Segment | None = None) -> ChainReport:
    """Walk segments from `start`; stop at `until` (inclusive) or at the first gap.

    `missing` is set when a segment is absent but a later one on the timeline is archived
    (a hole in the chain), or when `until` is beyond the last archived segment."""
    segments = sorted(
        Segment.parse(n, start.size)
        for n in names
        if SEGMENT_RE.match(n) and timeline_of(n) == start.timeline
    )
    partials = {n.removesuffix(".partial") for n in names if PARTIAL_RE.match(n)}
    present = {s.number for s in segments}
    highest = max(present | {start.number - 1})
    current = start
    last: Segment | None = None
    while True:
        if until is not None and current.number > until.number:
            return ChainReport(start, last, None, False)
        if current.number in present:
            last = current
            current = current.next()
            continue
        if current.name in partials:
            return ChainReport(start, current, None, True)
        hole = current.number <= highest or (until is not None)
        return ChainReport(start, last, current if hole else None, False)


def timeline_paths(archive: WalArchive, names: set[str]) -> dict[int, tuple[TimelineSpan, ...]]:
    """Each archived timeline's path (from its `.history` file), checked against the hash
    recorded at push time. A damaged history file is an error naming it: following a
    wrong path would restore a branch nobody asked for."""
    paths: dict[int, tuple[TimelineSpan, ...]] = {}
    for name in sorted(n for n in names if HISTORY_RE.match(n)):
        if archive.find(name) is None:
            continue
        raw = archive.read(name)  # checked against its (signed) hash
        if raw is None:
            continue
        try:
            paths[timeline_of(name)] = timeline_path(timeline_of(name), parse_history(raw.decode()))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RepositoryError(f"timeline history {name} in the archive is unreadable: {exc}") from exc
    return paths


def check_path(
    names: set[str], path: tuple[TimelineSpan, ...], start: Segment, until: int | None = None
) -> ChainReport:
    """`check_chain` along a timeline path: segment n comes from the timeline recovery
    reads it from (see `segment_on_path`). A segment missing on a timeline the path has
    already left is always a hole; on the newest one, only if a later one is archived or
    `until` (a segment number, inclusive) needs it."""
    if not path:
        path = (TimelineSpan(start.timeline, None, None),)
    present = {n for n in names if SEGMENT_RE.match(n)}
    partials = {n.removesuffix(".partial") for n in names if PARTIAL_RE.match(n)}
    on_it = [
        s.number
        for s in (Segment.parse(n, start.size) for n in present)
        if segment_on_path(path, s.number, start.size) == s
    ]
    highest = max(on_it, default=start.number - 1)
    number, last = start.number, None
    while until is None or number <= until:
        current = segment_on_path(path, number, start.size)
        if current.name in present:
            last, number = current, number + 1
            continue
        if current.name in partials:
            return ChainReport(start, current, None, True)
        hole = number <= highest or until is not None or current.timeline != path[-1].timeline
        return ChainReport(start, last, current if hole else None, False)
    return ChainReport(start, last, None, False)
