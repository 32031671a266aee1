"""Filesystem repository: one file per key, written temp + fsync + rename.

Nothing inside the root is ever followed. The database's OS user (which runs `drkit
wal-push`) can write the repository, and drkit runs as root: a link planted there
(`redis/notes.zst -> /root/secret`, a backup directory -> /etc) must never make drkit read,
copy, write or delete anything outside it. So every path is walked from the root one
directory at a time, each opened with O_NOFOLLOW | O_DIRECTORY relative to its parent's
descriptor, and every file is opened with O_NOFOLLOW (and O_NONBLOCK, so a planted fifo
cannot hang a read). A link or a special file is not a blob: it is never listed, reading it
raises IntegrityError naming it, and `strays` reports it. The root itself comes from the
configuration and may be a link.

When drkit runs as root over a repository whose root directory belongs to another user
(the PostgreSQL user that runs `drkit wal-push`), everything it creates is given to that
user, so root-run backups and user-run archiving never lock each other out.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from drkit.adapters.repository.port import Entry, Stray, StrayKind
from drkit.domain.errors import IntegrityError, RepositoryError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
TEMP_SUFFIX = ".tmp"


def is_temporary(name: str) -> bool:
    """A put's temporary file (`.<name>.<random>.tmp`): never a blob."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


class FsRepository:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    # -- walking without following ---------------------------------------------------------

    def _parts(self, key: str) -> builtins.list[str]:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise RepositoryError(f"invalid repository key {key!r}")
        return parts

    def _open_root(self, *, create: bool) -> int:
        if create:
            self._make_root()
        return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _open_dir(self, parts: builtins.list[str], *, create: bool = False) -> int:
        """A descriptor of the directory `parts` below the root, never through a link.
        FileNotFoundError when it does not exist (and `create` is off)."""
        fd = self._open_root(create=create)
        for n, part in enumerate(parts):
            fd = self._step(fd, part, parts[: n + 1], create=create)  # closes the parent
        return fd

    def _step(self, parent: int, name: str, where: builtins.list[str], *, create: bool) -> int:
        """Open `name` in `parent` as a directory (closing `parent`)."""
        try:
            try:
                return os.open(name, DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise
                self._mkdir(parent, name)
                return os.open(name, DIR_FLAGS, dir_fd=parent)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise self._not_a_directory(parent, name, "/".join(where)) from None
        finally:
            os.close(parent)

    def _not_a_directory(self, parent: int, name: str, where: str) -> Exception:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=parent)
            return IntegrityError(
                f"{where} in {self.root} is a symbolic link (to {target}); the repository never "
                "follows links: remove it (drkit verify --repo lists every one)"
            )
        return FileNotFoundError(errno.ENOTDIR, f"{where} in {self.root} is not a directory")

    def _mkdir(self, parent: int, name: str) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o750, dir_fd=parent)
            owner = self._owner()
            if owner:
                os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)

    def _make_root(self) -> None:
        owner = self._owner()
        missing: builtins.list[Path] = []
        probe = self.root
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

    def _owner(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            st = self.root.stat()
        except FileNotFoundError:
            return None
        return None if st.st_uid == 0 else (st.st_uid, st.st_gid)

    @contextlib.contextmanager
    def _parent(self, key: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
        parts = self._parts(key)
        fd = self._open_dir(parts[:-1], create=create)
        try:
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _blob_stat(self, parent: int, name: str, key: str) -> os.stat_result:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise self._not_a_blob(parent, name, key, st)
        return st

    def _not_a_blob(self, parent: int, name: str, key: str, st: os.stat_result) -> Exception:
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=parent)
            return IntegrityError(
                f"{key} in {self.root} is a symbolic link (to {target}), not a stored file; the "
                "repository never follows links: remove it (drkit verify --repo lists every one)"
            )
        if stat.S_ISDIR(st.st_mode):
            return FileNotFoundError(errno.EISDIR, f"{key} is a directory in {self.root}")
        return IntegrityError(f"{key} in {self.root} is not a regular file ({_kind(st)}); refusing it")

    # -- the port --------------------------------------------------------------------------

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        try:
            with self._parent(key, create=True) as (parent, name):
                self._put_in(parent, name, data, overwrite=overwrite)
        except (FileExistsError, IntegrityError):
            raise
        except OSError as exc:
            raise RepositoryError(self._describe(exc, f"cannot write {key}")) from exc

    def _put_in(self, parent: int, name: str, data: bytes, *, overwrite: bool) -> None:
        tmp = f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                owner = self._owner()
                if owner:
                    os.fchown(fh.fileno(), *owner)
            if overwrite:  # rename replaces a link planted at `name`, never writes through it
                os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            else:  # link() fails if the name exists (a link too): an atomic create-if-absent
                os.link(tmp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
                os.unlink(tmp, dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=parent)
            raise
        os.fsync(parent)

    @staticmethod
    def _describe(exc: OSError, what: str) -> str:
        if exc.errno == errno.ENOSPC:
            return f"{what}: the repository's disk is full"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"{what}: permission denied ({exc.filename})"
        return f"{what}: {exc.strerror or exc}"

    def get(self, key: str) -> bytes:
        try:
            with self._parent(key) as (parent, name):
                return self._read(parent, name, key)
        except (FileNotFoundError, IntegrityError):
            raise
        except OSError as exc:
            raise RepositoryError(self._describe(exc, f"cannot read {key}")) from exc

    def _read(self, parent: int, name: str, key: str) -> bytes:
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise self._not_a_blob(
                parent, name, key, os.stat(name, dir_fd=parent, follow_symlinks=False)
            ) from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise self._not_a_blob(parent, name, key, st)
            return fh.read()

    def exists(self, key: str) -> bool:
        try:
            with self._parent(key) as (parent, name):
                self._blob_stat(parent, name, key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        with self._parent(key) as (parent, name):
            return self._blob_stat(parent, name, key).st_size

    def list(self, prefix: str) -> builtins.list[str]:
        return [e.key for e in self.entries(prefix)]

    def entries(self, prefix: str) -> builtins.list[Entry]:
        out = [
            Entry(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
            for key, st, _target in self._walk(prefix)
            if stat.S_ISREG(st.st_mode) and not is_temporary(key.rsplit("/", 1)[-1])
        ]
        return sorted(out, key=lambda e: e.key)

    def _walk(self, prefix: str) -> Iterator[tuple[str, os.stat_result, str | None]]:
        """Every entry under `prefix` that is not a directory: its key, its own stat and,
        for a link, where it points. Directories are entered only when they are real ones
        (a link to one is yielded, never entered)."""
        parts = [p for p in prefix.split("/") if p]
        if parts:
            self._parts(prefix)  # the same validation as a key
        try:
            fd = self._open_dir(parts)
        except FileNotFoundError:
            return
        yield from _walk_fd(fd, "/".join(parts))

    def strays(self, prefix: str) -> builtins.list[Stray]:
        out: builtins.list[Stray] = []
        try:
            walked = list(self._walk(prefix))
        except IntegrityError as exc:  # the prefix itself is (under) a link
            return [Stray(prefix.rstrip("/"), StrayKind.LINK, exc.message)]
        for key, st, target in walked:
            when = datetime.fromtimestamp(st.st_mtime, UTC)
            if stat.S_ISLNK(st.st_mode):
                out.append(Stray(key, StrayKind.LINK, f"symbolic link to {target}", when))
            elif not stat.S_ISREG(st.st_mode):
                out.append(Stray(key, StrayKind.SPECIAL, f"{_kind(st)}, not a stored file", when))
            elif is_temporary(key.rsplit("/", 1)[-1]):
                detail = f"temporary file of a write that did not finish ({st.st_size} bytes)"
                out.append(Stray(key, StrayKind.TEMPORARY, detail, when))
        return out

    def remove_stray(self, stray: Stray) -> None:
        with contextlib.suppress(FileNotFoundError), self._parent(stray.key) as (parent, name):
            os.unlink(name, dir_fd=parent)  # never follows: a link goes as a link

    def replace_if(self, key: str, data: bytes, *, expected: bytes) -> bool:
        """In place through one descriptor: never created, and never a file that replaced
        the one opened (a lease another host created after this one was removed)."""
        try:
            with self._parent(key) as (parent, name):
                fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise RepositoryError(self._describe(exc, f"cannot renew {key}")) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or _read_all(fd) != expected:
                return False
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
            return True
        except OSError as exc:
            raise RepositoryError(self._describe(exc, f"cannot renew {key}")) from exc
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        parts = self._parts(key)
        with contextlib.suppress(FileNotFoundError), self._parent(key) as (parent, name):
            os.unlink(name, dir_fd=parent)  # a link goes as a link
        self._delete_empty_parents(parts[:-1])  # up to (not including) the root

    def delete_tree(self, prefix: str) -> None:
        parts = self._parts(prefix)
        try:
            with self._parent(prefix) as (parent, name):
                _remove_entry(parent, name)
        except FileNotFoundError:
            return
        self._delete_empty_parents(parts[:-1])

    def _delete_empty_parents(self, parts: builtins.list[str]) -> None:
        while parts:
            try:
                with self._parent("/".join(parts)) as (parent, name):
                    os.rmdir(name, dir_fd=parent)
            except OSError:
                return
            parts = parts[:-1]

    def check_writable(self) -> None:
        key = f".drkit-probe-{os.getpid()}"
        try:
            self._make_root()
            self.put(key, b"probe")
            if self.get(key) != b"probe":
                raise RepositoryError(f"repository {self.root} returned different bytes")
        except OSError as exc:
            raise RepositoryError(self._describe(exc, f"cannot write to {self.root}")) from exc
        finally:
            with contextlib.suppress(OSError, RepositoryError):
                self.delete(key)


def _walk_fd(fd: int, base: str) -> Iterator[tuple[str, os.stat_result, str | None]]:
    """`FsRepository._walk` below one open directory (closed when done)."""
    try:
        with os.scandir(fd) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        children: list[tuple[str, str]] = []
        for entry in entries:
            key = f"{base}/{entry.name}" if base else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walked
            if stat.S_ISDIR(st.st_mode):
                children.append((entry.name, key))
                continue
            target = os.readlink(entry.name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
            yield key, st, target
        for name, key in children:
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed (or replaced) while we walked
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                continue
            yield from _walk_fd(child, key)
    finally:
        os.close(fd)


def _remove_entry(parent: int, name: str) -> None:
    """Remove `name` from `parent`: a real directory with everything in it (temporary files
    of killed writers included); anything else, a link too, as the entry itself."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        os.unlink(name, dir_fd=parent)
        return
    try:
        with os.scandir(fd) as scan:
            names = [e.name for e in scan]
        for child in names:
            with contextlib.suppress(FileNotFoundError):
                _remove_entry(fd, child)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=parent)


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a special file"
