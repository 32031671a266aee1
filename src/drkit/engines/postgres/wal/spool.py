"""The one server of WAL to a recovering PostgreSQL: the spool directory and what fills it.

During a restore drkit keeps the next segments decompressed in a spool directory inside the
data directory, so restore_command is a copy, not a process; and a server in a container,
which cannot run drkit, asks for any other file by leaving `.want-NAME` there, answered with
NAME, `.absent-NAME` (the archive lacks it) or `.error-NAME` (it cannot be served: one
line saying why). Both restore paths (a local server, a compose container) run this same
code (engines/postgres/wal/prefetch.py starts it).

The spool belongs to the database's OS user, who may plant anything there: links, fifos,
hostile names. So drkit, running as root, opens the directory once (`O_NOFOLLOW`) and does
everything relative to that descriptor: it never follows a link, never reads a file that
is not a regular one, creates each file under a private temporary name (`O_EXCL`), sets
its owner and mode through the open file, and renames it into place (a rename replaces a
planted link; it never writes through it). A name that is not a WAL file's is ignored, and
nothing one entry does stops the server.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from drkit.domain.errors import DrkitError
from drkit.domain.wal import SEGMENT_RE, Segment, TimelineSpan, is_wal_file_name, segment_on_path
from drkit.engines.postgres.wal.archive import WalArchive

WANT = ".want-"
ABSENT = ".absent-"
ERROR = ".error-"
REQUESTED = ".requested"
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class SpoolDir:
    """A directory another user owns, used without following anything planted in it."""

    def __init__(self, path: Path, owner: tuple[int, int] | None) -> None:
        self.path = path
        self.owner = owner if os.geteuid() == 0 else None
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
        if self.owner is not None:
            os.fchown(self.fd, *self.owner)
        os.fchmod(self.fd, 0o700)

    def close(self) -> None:
        os.close(self.fd)

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    def holds(self, name: str) -> bool:
        """A regular file (not a link, a fifo, a directory) of that name is there."""
        try:
            return stat.S_ISREG(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return False

    def publish(self, name: str, data: bytes) -> None:
        """`name` with `data`, whole or not at all, owned by the spool's owner (mode 0600)."""
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.owner is not None:
                    os.fchown(fh.fileno(), *self.owner)
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.remove(tmp)
            raise

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):  # a planted directory stays
            os.unlink(name, dir_fd=self.fd)

    def read_note(self, name: str, limit: int = 256) -> str:
        """A short text file's first line; "" when it is absent or not a regular file."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=self.fd)
        except OSError:
            return ""
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return ""
            return os.read(fd, limit).decode(errors="replace").strip().split("\n")[0]
        finally:
            os.close(fd)

    def clear(self) -> None:
        """Everything a killed run (or anyone) left: a new restore serves only what it fetched."""
        for name in self.names():
            self.remove(name)


@dataclass
class SpoolServer:
    """Prefetches from `first` (up to one past `last`: recovery reads on to find the end of
    the WAL) while the window has room, and answers `.want-` requests."""

    archive: WalArchive
    spool: SpoolDir
    first: Segment
    last: Segment | None
    window: int = 16
    path: tuple[TimelineSpan, ...] = ()  # the plan's timeline path: whose file each segment is
    problems: list[str] = field(default_factory=list)
    _next: Segment | None = None
    _prefetching: bool = True
    _asked: set[str] = field(default_factory=set)  # served on `.want-`: the asker copies it yet

    def __post_init__(self) -> None:
        self._next = self.first

    def _after(self, segment: Segment) -> Segment:
        """The next segment recovery reads: on the path, across a timeline switch."""
        if not self.path:
            return segment.next()
        return segment_on_path(self.path, segment.number + 1, segment.size)

    def step(self) -> bool:
        """One round; True when it did something (the loop then goes on without a pause)."""
        names = self.spool.names()
        answered = self._answer(names)
        position = self.spool.read_note(REQUESTED)
        ahead = 0
        for name in names:
            if not SEGMENT_RE.match(name) or name in self._asked:
                continue  # an asked-for file (often behind the position: the end of recovery
                # reads its last segment again) stays until the spool goes
            if position and SEGMENT_RE.match(position) and name < position:
                self.spool.remove(name)  # recovery is past it
            else:
                ahead += 1
        return self._prefetch(ahead) or answered

    def _answer(self, names: list[str]) -> bool:
        did = False
        for entry in names:
            if not entry.startswith(WANT):
                continue
            name = entry[len(WANT) :]
            if is_wal_file_name(name) and not any(self.spool.holds(p + name) for p in ("", ABSENT, ERROR)):
                self._serve(name)
            self.spool.remove(entry)  # answered, or a name no recovery asks for: ignored
            did = True
        return did

    def _serve(self, name: str) -> None:
        try:
            raw = self.archive.read(name)
        except (DrkitError, OSError) as exc:
            why = exc.message if isinstance(exc, DrkitError) else f"{exc.strerror or exc}"
            self.problems.append(f"{name}: {why}")
            self.spool.publish(ERROR + name, f"drkit cannot serve {name}: {why}\n".encode())
            return
        if raw is None:
            self.spool.publish(ABSENT + name, b"")
        else:
            self._asked.add(name)
            self.spool.publish(name, raw)

    def _prefetch(self, ahead: int) -> bool:
        current = self._next
        if not self._prefetching or current is None or ahead >= self.window:
            return False
        if self.last is not None and current.number > self.last.number + 1:
            self._prefetching = False
            return False
        try:
            raw = self.archive.read(current.name)
        except (DrkitError, OSError):
            # Prefetch is an optimisation: the request (wal-fetch, or `.want-`) reports it.
            self._prefetching = False
            return False
        if raw is None:
            self.spool.publish(ABSENT + current.name, b"")  # the end of the archive
            self._prefetching = False
        else:
            self.spool.publish(current.name, raw)
            self._next = self._after(current)
        return True

    def mark_absent_histories(self) -> None:
        """Recovery probes for history files: of later timelines, and at promotion of its own
        and earlier ones (timeline 1 never has one). Each absent one is answered at once."""
        newest = max([self.first.timeline, *(s.timeline for s in self.path)])
        for tli in range(1, newest + 4):
            name = f"{tli:08X}.history"
            if not self.archive.holds(name):  # a stat; a failing or missing archive raises
                self.spool.publish(ABSENT + name, b"")

    def run(self, stop: threading.Event, pause: float = 0.05) -> None:
        """Until `stop`: no entry, request or archive failure ends the loop."""
        while not stop.is_set():
            try:
                busy = self.step()
            except Exception as exc:  # the server must outlive any one round
                self.problems.append(f"{type(exc).__name__}: {exc}")
                busy = False
            if not busy:
                stop.wait(pause)


def request_command(spool: str, wait_seconds: int) -> str:
    """restore_command's fallback where drkit cannot run (a container): ask for %f with
    `.want-%f` and wait for the file, `.absent-%f` (exit 1: no such file) or `.error-%f`
    (exit 126, which stops recovery, with drkit's reason on stderr). Exit 126 after
    `wait_seconds` too: a server nobody answers must stop recovery, not end it."""
    rounds = wait_seconds * 5
    return (
        f'touch "{spool}/{WANT}%f"; n=0; while [ $n -lt {rounds} ]; do '
        f'if [ -f "{spool}/%f" ] && cp "{spool}/%f" "%p" 2>/dev/null; then exit 0; fi; '
        f'if [ -f "{spool}/{ABSENT}%f" ]; then exit 1; fi; '
        f'if [ -f "{spool}/{ERROR}%f" ]; then cat "{spool}/{ERROR}%f" >&2; exit 126; fi; '
        f"sleep 0.2; n=$((n+1)); done; exit 126"
    )
