"""The WAL archive: push (archive_command), fetch (restore_command), list, and the chain check.

Layout: `<stack>/<service>/wal/<timeline>/<name>.zst[.age]`, and beside each complete file
`<name>.sha256`: the SHA-256 of its raw content. Pushing the same segment twice succeeds; a
different file under an existing name is refused (the archive is append-only). The hash lets
a re-push be compared without the secret key (archive_command has only the public keys) and
lets a fetch refuse a damaged segment instead of handing PostgreSQL other bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.port import Repository
from drkit.domain.errors import IntegrityError, OperationError
from drkit.domain.wal import (
    PARTIAL_RE,
    SEGMENT_RE,
    Segment,
    is_wal_file_name,
    parse_history,
    timeline_of,
)
from drkit.engines.core.layout import wal_prefix
from drkit.infra.atomic import temp_beside

SUFFIXES = (".zst", ".zst.age")


@dataclass(frozen=True)
class PushResult:
    name: str
    key: str
    stored: bool  # False: the same content was already archived


class WalArchive:
    def __init__(self, repo: Repository, stack: str, service: str, codec: Codec) -> None:
        self.repo = repo
        self.prefix = wal_prefix(stack, service)
        self.codec = codec

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
        try:
            return self.repo.get(self._hash_key(name)).decode().strip()
        except FileNotFoundError:
            return None

    def push_bytes(self, name: str, raw: bytes) -> PushResult:
        if not is_wal_file_name(name):
            raise OperationError(f"{name} is not a WAL file name")
        partial = bool(PARTIAL_RE.match(name))
        digest = sha256(raw)
        existing = self.find(name)
        if existing and not partial:
            recorded = self.recorded_hash(name)
            if recorded is None:  # archived before hashes were kept: compare the content
                recorded = sha256(self.codec.decode(self.repo.get(existing), name=existing))
            if recorded == digest:
                return PushResult(name, existing, stored=False)
            raise IntegrityError(
                f"{name} is already archived with different content; refusing to overwrite "
                f"it (two clusters archiving into one repository?)"
            )
        key = self._key(name)
        if not partial:  # partials change in place; their hash would race with their content
            self.repo.put(self._hash_key(name), digest.encode(), overwrite=True)
        try:
            self.repo.put(key, self.codec.encode(raw), overwrite=partial)
        except FileExistsError:
            return self.push_bytes(name, raw)  # lost a race with a concurrent push: compare
        if SEGMENT_RE.match(name):
            stale = self.find(name + ".partial")
            if stale:
                self.repo.delete(stale)
        return PushResult(name, key, stored=True)

    def push(self, path: Path) -> PushResult:
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise OperationError(f"{path}: no such WAL file") from exc
        return self.push_bytes(path.name, raw)

    def fetch(self, name: str, dest: Path) -> bool:
        """Write `name` to `dest`; False if the archive does not hold it. A segment that only
        exists as `.partial` (the newest, from streaming) is served in its place."""
        key = self.find(name)
        if key is None and SEGMENT_RE.match(name):
            key = self.find(name + ".partial")
        if key is None:
            return False
        raw = self.codec.decode(self.repo.get(key), name=key)
        recorded = None if key.endswith((".partial.zst", ".partial.zst.age")) else self.recorded_hash(name)
        if recorded is not None and recorded != sha256(raw):
            raise IntegrityError(f"archived {name} does not match its recorded SHA-256; it is damaged")
        fd, tmp = temp_beside(dest)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(raw)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True

    def names(self) -> set[str]:
        """Every archived WAL file name (suffixes stripped)."""
        out: set[str] = set()
        for key in self.repo.list(self.prefix):
            base = key.rsplit("/", 1)[-1]
            for suffix in SUFFIXES[::-1]:
                if base.endswith(suffix):
                    out.add(base[: -len(suffix)])
                    break
        return out

    def history(self, timeline: int) -> str | None:
        key = self.find(f"{timeline:08X}.history")
        if key is None:
            return None
        return self.codec.decode(self.repo.get(key), name=key).decode()

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
            self.repo.delete(key)
        self.repo.delete(self._hash_key(name))


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
