"""Moving object versions between a bucket and the repository.

Backup: a small version (up to SMALL_MAX) is read whole and handed to a Packer, which
stores many of them as one pack; a big version is read as a stream and stored in parts of
PART_SIZE. drkit's SHA-256 of every content is computed on the way. Restore: the content
is read back (a pack is decoded once and shared by the workers) and checked against that
SHA-256 before anything is written; then it is uploaded (one PUT, or a multipart upload of
the same parts) and the server's answer is checked too: its ETag is the MD5 we expect, or
else the object is read back and hashed. Memory stays bounded by a few parts or packs.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from drkit.adapters.s3.client import MIB, etag_is_md5
from drkit.adapters.s3.objects import ObjectStore, ObjectVersion
from drkit.domain.errors import IntegrityError
from drkit.engines.core.workspace import Workspace
from drkit.engines.objects.catalog import Catalog, StoredVersion, VersionRecord, blob_stem, fingerprint

PART_SIZE = 8 * MIB  # >= 5 MiB: the same parts become a multipart upload on restore
SMALL_MAX = 1 * MIB  # versions up to this size are packed
PACK_TARGET = 8 * MIB  # a pack is stored once it holds this much
PACKS_CACHED = 4


def cut(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a stream of chunks into pieces of `size` (the last may be shorter); an empty
    stream gives one empty piece, so every object has at least one part."""
    buffer = bytearray()
    produced = False
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            produced = True
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer or not produced:
        yield bytes(buffer)


class PackCache:
    """The few packs decoded last, shared by restore workers; each is decoded only once."""

    def __init__(self, capacity: int = PACKS_CACHED) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._packs: OrderedDict[str, bytes] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, name: str, load: Callable[[], bytes]) -> bytes:
        with self._lock:
            if name in self._packs:
                self._packs.move_to_end(name)
                return self._packs[name]
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            with self._lock:
                if name in self._packs:
                    return self._packs[name]
            data = load()
            with self._lock:
                self._packs[name] = data
                while len(self._packs) > self._capacity:
                    self._packs.popitem(last=False)
                self._loading.pop(name, None)
            return data


@dataclass(frozen=True)
class BucketIO:
    """One bucket and where its versions live in the repository."""

    ws: Workspace
    store: ObjectStore
    bucket: str
    prefix: str  # the bucket's objects directory in the repository
    packs: PackCache = field(default_factory=PackCache, compare=False)


@dataclass(frozen=True)
class SmallVersion:
    """A small version's content, read whole, waiting for its pack."""

    data: bytes
    content_type: str
    metadata: dict[str, str]


def fetch_version(
    io: BucketIO, v: ObjectVersion, progress: Callable[[int], None]
) -> StoredVersion | SmallVersion:
    """Read a small version whole; store a big one in parts, a part already there (an
    interrupted run stored it; versions never change) being kept."""
    with io.store.read(io.bucket, v.key, v.version_id) as body:
        if v.size <= SMALL_MAX:
            data = b"".join(body.chunks)
            progress(len(data))
            return SmallVersion(data, body.content_type, body.metadata)
        stem = blob_stem(io.bucket, fingerprint(v))
        digest = hashlib.sha256()
        names: list[str] = []
        size = 0
        for index, raw in enumerate(cut(body.chunks, PART_SIZE)):
            digest.update(raw)
            size += len(raw)
            name = f"{stem}.{index:05d}{io.ws.codec.suffix}"
            with contextlib.suppress(FileExistsError):
                io.ws.repo.put(io.prefix + name, io.ws.codec.encode(raw), overwrite=False)
            names.append(name)
            progress(len(raw))
        return StoredVersion(digest.hexdigest(), size, tuple(names), body.content_type, body.metadata)


class Packer:
    """Collects small versions; stores them as one pack, then records them in the catalog
    (a version is in the catalog only once its content is stored)."""

    def __init__(self, io: BucketIO, catalog: Catalog, run_id: str) -> None:
        self.io = io
        self.catalog = catalog
        self.run_id = run_id
        self._buffer = bytearray()
        self._members: dict[str, StoredVersion] = {}
        self._written = 0

    def add(self, fp: str, small: SmallVersion) -> None:
        digest = hashlib.sha256(small.data).hexdigest()
        member = StoredVersion(digest, len(small.data), (), small.content_type, small.metadata)
        self._members[fp] = replace(member, offset=len(self._buffer))
        self._buffer += small.data
        if len(self._buffer) >= PACK_TARGET:
            self.flush()

    def flush(self) -> None:
        if not self._members:
            return
        self._written += 1
        name = f"packs/{self.run_id}-{self._written:05d}.pack{self.io.ws.codec.suffix}"
        self.io.ws.repo.put(
            self.io.prefix + name, self.io.ws.codec.encode(bytes(self._buffer)), overwrite=False
        )
        self.catalog.add({fp: replace(m, pack=name) for fp, m in self._members.items()})
        self._buffer = bytearray()
        self._members = {}


def _contents(io: BucketIO, stored: StoredVersion) -> Iterator[bytes]:
    """The content, as the parts it was stored in (a pack member is one part)."""
    if stored.pack is not None:
        pack = stored.pack
        data = io.packs.get(pack, lambda: io.ws.codec.decode(_get(io, pack), name=pack))
        yield data[stored.offset : stored.offset + stored.size]
        return
    for name in stored.parts:
        yield io.ws.codec.decode(_get(io, name), name=name)


def _get(io: BucketIO, name: str) -> bytes:
    try:
        return io.ws.repo.get(io.prefix + name)
    except FileNotFoundError as exc:
        raise IntegrityError(f"{name} is missing from {io.ws.repo.location}") from exc


def check_content(io: BucketIO, record: VersionRecord) -> str:
    """Read the content back, check its SHA-256 and size; return the ETag it should get."""
    stored = _stored(record)
    digest = hashlib.sha256()
    md5s: list[bytes] = []
    size = 0
    for raw in _contents(io, stored):
        digest.update(raw)
        md5s.append(hashlib.md5(raw, usedforsecurity=False).digest())
        size += len(raw)
    if digest.hexdigest() != stored.sha256 or size != stored.size:
        raise IntegrityError(
            f"{io.bucket}/{record.key} version {record.version.version_id}: the stored copy does not "
            f"match its SHA-256 in the backup (damaged repository)"
        )
    if len(md5s) == 1:
        return md5s[0].hex()
    combined = hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(md5s)}"


def restore_version(io: BucketIO, record: VersionRecord, target: str) -> None:
    """Write one version's content as the current object `record.key` of `target`, verified."""
    stored = _stored(record)
    expected = check_content(io, record)
    if stored.pack is not None or len(stored.parts) == 1:
        data = next(_contents(io, stored))
        etag = io.store.put(target, record.key, data, stored.content_type, stored.metadata)
    else:
        etag = io.store.put_parts(
            target, record.key, _contents(io, stored), stored.content_type, stored.metadata
        )
    if etag == expected:
        return
    # An ETag that is not our MD5 (server-side encryption, another part layout): read it back.
    if io.store.sha256_of(target, record.key) != stored.sha256:
        raise IntegrityError(f"{target}/{record.key}: the restored object does not match its SHA-256")


def same_content(record: VersionRecord, etag: str, size: int) -> bool:
    """Whether a target's current object already holds this version's bytes: only claimed
    when both ETags are plain MD5s (single-part uploads) and equal."""
    v = record.version
    return etag_is_md5(etag) and etag_is_md5(v.etag) and etag == v.etag and size == v.size


def restore_order(record: VersionRecord) -> tuple[str, int]:
    """Pack members in pack order, so the workers share each decoded pack while it is cached."""
    stored = record.stored
    return (stored.pack or "", stored.offset) if stored else ("", 0)


def _stored(record: VersionRecord) -> StoredVersion:
    if record.stored is None:
        raise IntegrityError(f"{record.key}: a delete marker has no content to restore")
    return record.stored
