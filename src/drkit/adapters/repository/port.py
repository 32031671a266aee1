"""The Repository port: a flat namespace of immutable blobs addressed by `/`-separated keys.

Guarantees every backend gives:
- `put` is atomic: a reader sees the whole blob or none of it, never a torn write.
- `put` with `overwrite=False` refuses to replace an existing key (raises FileExistsError).
- `list(prefix)` returns every key under `prefix`, sorted, with no temporary files. A prefix
  names a folder and ends with `/` (`stack/postgres/wal/`): backends need not match partial
  names.
- `get` of a missing key raises FileNotFoundError.
- Nothing is ever followed: a symbolic link (or a fifo, a device) inside a filesystem
  repository is not a blob. It is never listed, read, copied or written through; reading
  it raises IntegrityError naming it, and `strays` reports it.
- `strays(prefix)` reports what is under `prefix` and is not a blob: links and other
  special files (damage: `drkit verify --repo` fails on them), and the leftovers of writes
  that were killed (temporary files, unfinished multipart uploads), which are never listed
  as blobs and which `drkit prune` removes once they are old (`remove_stray`).
- `replace_if(key, data, expected=...)` replaces a blob only while it still holds
  `expected`, and never creates one: what a lease renewal needs (engines/core/lease.py).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    modified: datetime


class StrayKind(StrEnum):
    LINK = "link"  # a symbolic link (filesystem): damage, never followed
    SPECIAL = "special"  # a fifo, socket or device (filesystem): damage, never opened
    TEMPORARY = "temporary"  # a temporary file of a write that never finished (filesystem)
    UPLOAD = "upload"  # an unfinished multipart upload (S3)

    @property
    def leftover(self) -> bool:
        """What a killed write leaves behind (prune removes it); the others are damage."""
        return self in (StrayKind.TEMPORARY, StrayKind.UPLOAD)


@dataclass(frozen=True)
class Stray:
    """Something under a prefix that is not a blob (see the module docstring)."""

    key: str
    kind: StrayKind
    detail: str  # for an operator: "symbolic link to /root/secret", ...
    modified: datetime | None = None  # when it was written (an upload: initiated)
    handle: str = ""  # what the backend needs to remove it (an S3 upload id)


class Repository(Protocol):
    @property
    def location(self) -> str:
        """Where it is, for messages (`/var/backups/drkit`, `s3://bucket/prefix`)."""
        ...

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> list[str]: ...

    def entries(self, prefix: str) -> builtins.list[Entry]:
        """Like `list`, with each blob's size and last-modified time."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_tree(self, prefix: str) -> None:
        """Delete every blob under `prefix` and what interrupted writes left there
        (temporary files, unfinished multipart uploads)."""
        ...

    def strays(self, prefix: str) -> builtins.list[Stray]:
        """What is under `prefix` and is not a blob: links, special files, leftovers."""
        ...

    def remove_stray(self, stray: Stray) -> None:
        """Remove a stray itself (a link is removed as a link, never what it points to)."""
        ...

    def replace_if(self, key: str, data: bytes, *, expected: bytes) -> bool:
        """Replace the blob at `key` with `data` only while it holds `expected`; never
        create it. False when it is gone or holds something else."""
        ...

    def check_writable(self) -> None:
        """Write, read back and delete a probe blob; raise RepositoryError when that fails."""
        ...
