"""What the repository knows about a bucket's object versions, and where it keeps them.

    <stack>/<service>/objects/<bucket>/packs/<run>-<NNNNN>.pack.zst[.age]  small versions, packed
    <stack>/<service>/objects/<bucket>/blobs/<h2>/<h>.<NNNNN>.zst[.age]   a big version, in parts
    <stack>/<service>/objects/<bucket>/catalog/<run>-<NNNNN>.jsonl.zst[.age]   copied versions
    <stack>/<service>/backups/<id>/<bucket>.versions.jsonl.zst[.age]       one backup's listing

A version is copied once. Small versions (most attachments) are packed together, many to
one stored file (one write instead of thousands, and better compression); a member is the
bytes [offset, offset + size) of the decompressed pack. A big version is stored in parts
named after its bucket, key and version id (never after its content, so an encrypted
repository does not reveal content hashes). The catalog,
written in segments while a backup runs, says which versions are copied, with drkit's
SHA-256 of each; an interrupted run's segments are kept, so the next run goes on from
there. Each backup's listing (a file of its manifest) holds every version and delete marker
the bucket had at that time: what a restore "as of T" chooses from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drkit.adapters.s3.objects import ObjectVersion
from drkit.domain.errors import RepositoryError
from drkit.engines.core.workspace import Workspace

COMPACT_AFTER = 64  # catalog segments; more are merged into one
SCRATCH_PREFIX = "drkit-verify-"  # buckets a deep verify restores into: never backed up


@dataclass(frozen=True)
class StoredVersion:
    """One version's content as the repository holds it."""

    sha256: str
    size: int
    parts: tuple[str, ...]  # names under the bucket's objects directory (a big version)
    content_type: str = "binary/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    pack: str | None = None  # or: a member of this pack (a small version), from `offset`
    offset: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sha256": self.sha256,
            "size": self.size,
            "parts": list(self.parts),
            "content_type": self.content_type,
            "metadata": self.metadata,
        }
        if self.pack is not None:
            data.update(pack=self.pack, offset=self.offset)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredVersion:
        return cls(
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            parts=tuple(str(p) for p in data["parts"]),
            content_type=str(data.get("content_type") or "binary/octet-stream"),
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
            pack=str(data["pack"]) if data.get("pack") else None,
            offset=int(data.get("offset", 0)),
        )


@dataclass(frozen=True)
class VersionRecord:
    """One line of a backup's listing: a version (with its stored copy) or a delete marker."""

    version: ObjectVersion
    stored: StoredVersion | None  # None for a delete marker

    @property
    def key(self) -> str:
        return self.version.key

    def to_line(self) -> str:
        v = self.version
        data: dict[str, Any] = {
            "key": v.key,
            "version_id": v.version_id,
            "last_modified": v.last_modified.isoformat(),
            "is_latest": v.is_latest,
            "delete_marker": v.delete_marker,
        }
        if not v.delete_marker:
            data.update(size=v.size, etag=v.etag)
        if self.stored is not None:
            data.update(self.stored.to_dict())
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_line(cls, line: str) -> VersionRecord:
        data = json.loads(line)
        version = ObjectVersion(
            key=str(data["key"]),
            version_id=str(data["version_id"]),
            last_modified=datetime.fromisoformat(data["last_modified"]),
            is_latest=bool(data["is_latest"]),
            delete_marker=bool(data["delete_marker"]),
            size=int(data.get("size", 0)),
            etag=str(data.get("etag", "")),
        )
        stored = None if version.delete_marker else StoredVersion.from_dict(data)
        return cls(version, stored)


def fingerprint(v: ObjectVersion) -> str:
    """What identifies a version for good. The `null` version (written while versioning was
    off or suspended) can be replaced in place, so its ETag and time are part of it."""
    if v.version_id == "null":
        return f"{v.key}\0null\0{v.etag}\0{v.last_modified.isoformat()}"
    return f"{v.key}\0{v.version_id}"


def blob_stem(bucket: str, fp: str) -> str:
    digest = hashlib.sha256(f"{bucket}\0{fp}".encode()).hexdigest()[:40]
    return f"blobs/{digest[:2]}/{digest}"


def objects_prefix(stack: str, service: str, bucket: str) -> str:
    return f"{stack}/{service}/objects/{bucket}/"


def listing_stem(bucket: str) -> str:
    return f"{bucket}.versions.jsonl"


def encode_listing(records: Iterable[VersionRecord]) -> bytes:
    return "".join(r.to_line() + "\n" for r in records).encode()


def decode_listing(raw: bytes) -> list[VersionRecord]:
    return [VersionRecord.from_line(line) for line in raw.decode().splitlines() if line.strip()]


class Catalog:
    """The copied versions of one bucket: read whole at the start of a run, appended to in
    segments as the run copies, merged into one segment when there are many."""

    def __init__(self, ws: Workspace, service: str, bucket: str, run_id: str) -> None:
        self.ws = ws
        self.prefix = objects_prefix(ws.stack.name, service, bucket) + "catalog/"
        self.run_id = run_id
        self.known: dict[str, StoredVersion] = {}
        self._segments: list[str] = []
        self._written = 0

    def load(self) -> Catalog:
        self._segments = self.ws.repo.list(self.prefix)
        for key in self._segments:
            name = key.rsplit("/", 1)[-1]
            try:
                text = self.ws.codec.decode(self.ws.repo.get(key), name=name).decode()
                for line in text.splitlines():
                    if line.strip():
                        entry = json.loads(line)
                        self.known[str(entry["fingerprint"])] = StoredVersion.from_dict(entry)
            except (ValueError, KeyError) as exc:
                raise RepositoryError(f"catalog segment {key} is unreadable: {exc}") from exc
        return self

    def add(self, entries: dict[str, StoredVersion]) -> None:
        """Record newly copied versions (their blobs are already stored) as one segment."""
        if not entries:
            return
        self._written += 1
        self._put(f"{self.run_id}-{self._written:05d}", entries)
        self.known.update(entries)

    def _put(self, stem: str, entries: dict[str, StoredVersion]) -> str:
        lines = "".join(json.dumps({"fingerprint": fp, **s.to_dict()}) + "\n" for fp, s in entries.items())
        key = f"{self.prefix}{stem}.jsonl{self.ws.codec.suffix}"
        self.ws.repo.put(key, self.ws.codec.encode(lines.encode()), overwrite=False)
        return key

    def compact(self) -> None:
        """Merge the segments read at load time into one, then delete them (the merged one is
        written first: a crash in between leaves duplicates, never a gap)."""
        if len(self._segments) < COMPACT_AFTER:
            return
        self.replace_with(dict(self.known), "compact")

    def replace_with(self, entries: dict[str, StoredVersion], label: str) -> None:
        """Write `entries` as one segment, then delete the segments read at load time: what
        compaction does, and what pruning does to forget the versions whose storage goes."""
        if entries:
            self._put(f"{self.run_id}-{label}", entries)
        for key in self._segments:
            self.ws.repo.delete(key)
        self._segments = []
        self.known = dict(entries)


def state_at(records: Iterable[VersionRecord], moment: datetime | None) -> dict[str, VersionRecord]:
    """Per key, the version to restore: the newest at or before `moment` (the latest one when
    no moment is given), unless that newest entry is a delete marker.

    S3 times have one-second precision on many servers: within one second, the listing's
    `is_latest` and then its order (newest first per key) decide; a version wins a tie with
    a delete marker (restoring too much is recoverable, too little may not be).
    """
    best: dict[str, tuple[tuple[datetime, bool, bool, int], VersionRecord]] = {}
    for position, record in enumerate(records):
        v = record.version
        if moment is not None and v.last_modified > moment:
            continue
        if moment is None and not v.is_latest:
            continue
        rank = (v.last_modified, v.is_latest, not v.delete_marker, -position)
        current = best.get(v.key)
        if current is None or rank > current[0]:
            best[v.key] = (rank, record)
    return {key: record for key, (_, record) in best.items() if not record.version.delete_marker}
