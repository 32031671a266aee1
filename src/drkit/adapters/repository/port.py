"""The Repository port: a flat namespace of immutable blobs addressed by `/`-separated keys.

Guarantees every backend gives:
- `put` is atomic: a reader sees the whole blob or none of it, never a torn write.
- `put` with `overwrite=False` refuses to replace an existing key (raises FileExistsError).
- `list(prefix)` returns every key under `prefix`, sorted, with no temporary files. A prefix
  names a folder and ends with `/` (`stack/postgres/wal/`): backends need not match partial
  names.
- `get` of a missing key raises FileNotFoundError.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    modified: datetime


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

    def check_writable(self) -> None:
        """Write, read back and delete a probe blob; raise RepositoryError when that fails."""
        ...
