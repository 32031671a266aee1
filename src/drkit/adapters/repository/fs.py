"""Filesystem repository: one file per key, written temp + fsync + rename.

When drkit runs as root over a repository whose root directory belongs to another user
(the PostgreSQL user that runs `drkit wal-push`), everything it creates is given to that
user, so root-run backups and user-run archiving never lock each other out.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from drkit.adapters.repository.port import Entry
from drkit.domain.errors import RepositoryError
from drkit.infra.atomic import fsync_dir


class FsRepository:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise RepositoryError(f"invalid repository key {key!r}")
        return self.root.joinpath(*parts)

    def _owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            st = self.root.stat()
        except FileNotFoundError:
            return None
        return None if st.st_uid == 0 else (st.st_uid, st.st_gid)

    def _mkdirs(self, directory: Path) -> None:
        owner = self._owner()
        missing: list[Path] = []
        probe = directory
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            try:
                path.mkdir(mode=0o750)
            except FileExistsError:
                continue
            if owner:
                os.chown(path, *owner)

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        path = self._path(key)
        try:
            self._mkdirs(path.parent)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                owner = self._owner()
                if owner:
                    os.chown(tmp, *owner)
                if overwrite:
                    os.replace(tmp, path)
                else:
                    # link() fails if the name exists: an atomic create-if-absent.
                    os.link(tmp, path)
                    os.unlink(tmp)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            fsync_dir(path.parent)
        except FileExistsError:
            raise
        except OSError as exc:
            raise RepositoryError(self._describe(exc, f"cannot write {key}")) from exc

    @staticmethod
    def _describe(exc: OSError, what: str) -> str:
        if exc.errno == errno.ENOSPC:
            return f"{what}: the repository's disk is full"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"{what}: permission denied ({exc.filename})"
        return f"{what}: {exc.strerror or exc}"

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise RepositoryError(self._describe(exc, f"cannot read {key}")) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def list(self, prefix: str) -> list[str]:
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir():
            return []
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                full = Path(dirpath) / name
                keys.append(full.relative_to(self.root).as_posix())
        return sorted(keys)

    def entries(self, prefix: str) -> builtins.list[Entry]:
        out = []
        for key in self.list(prefix):
            try:
                st = self._path(key).stat()
            except FileNotFoundError:
                continue
            out.append(Entry(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return out

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._delete_empty_parents(path)  # up to (not including) the root

    def delete_tree(self, prefix: str) -> None:
        base = self._path(prefix)
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base, topdown=False):
            for name in files:  # temporary files of killed writers included
                (Path(dirpath) / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                Path(dirpath).rmdir()
        self._delete_empty_parents(base)

    def _delete_empty_parents(self, path: Path) -> None:
        parent = path.parent
        while parent != self.root and parent.is_dir():
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def check_writable(self) -> None:
        key = f".drkit-probe-{os.getpid()}"
        try:
            self._mkdirs(self.root)
            self.put(key, b"probe")
            if self.get(key) != b"probe":
                raise RepositoryError(f"repository {self.root} returned different bytes")
        finally:
            with contextlib.suppress(OSError):
                self.delete(key)
