"""Prefetch the WAL a recovery will ask for, so restore_command is a rename, not a process.

PostgreSQL fetches one segment at a time through restore_command; starting drkit for each
costs about half a second. While a restore runs, a thread keeps a window of the next
segments decompressed in `<data_dir>/drkit-prefetch/`; restore_command moves a prefetched
file into place and falls back to `drkit wal-fetch` for anything else (history files, the
streamed partial, segments past the window).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drkit.adapters.postgres.recovery_conf import shell_word
from drkit.domain.wal import Segment
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.infra.atomic import temp_beside
from drkit.infra.ownership import chown_tree

PREFETCH_DIR = "drkit-prefetch"


REQUESTED = ".requested"


def prefetch_restore_command(data_dir: Path, fallback: str) -> str:
    """Copy (PostgreSQL may ask for the same segment twice) and note the request, so the
    prefetcher knows how far recovery got; `.absent-NAME` answers "not in the archive"
    (the prefetcher wrote it after a stat of the archive said so) without a process.

    Exit 1 means "no such file" to PostgreSQL and ends recovery, so only the marker gives it:
    a copy that fails (a full pg_wal, the file pruned meanwhile) falls back to `wal-fetch`,
    which exits 126 on any failure and so stops recovery instead of ending it early."""
    s = shell_word(str(data_dir / PREFETCH_DIR))  # quoted; %f and %p are safe names
    return (
        f"if [ -f {s}/%f ] && cp {s}/%f %p; then echo %f > {s}/{REQUESTED} || true; "
        f"elif [ -f {s}/.absent-%f ]; then exit 1; "
        f"else {fallback}; fi"
    )


def _mark(path: Path) -> None:
    """An empty marker file, not created through a symlink (the spool is the database user's)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))


@contextmanager
def prefetching(
    archive: WalArchive,
    data_dir: Path,
    first: Segment,
    last: Segment | None,
    *,
    os_user: str | None,
    window: int = 16,
) -> Iterator[None]:
    spool = data_dir / PREFETCH_DIR
    spool.mkdir(exist_ok=True)
    chown_tree(spool, os_user)
    stop = threading.Event()

    # Recovery probes for history files: of later timelines, and at promotion of its own
    # and earlier ones (timeline 1 never has one).
    for tli in range(1, first.timeline + 4):
        name = f"{tli:08X}.history"
        if archive.locate(name) is None:  # a stat; a failing repository raises
            _mark(spool / f".absent-{name}")

    def requested() -> str:
        try:
            return (spool / REQUESTED).read_text().strip()
        except OSError:
            return ""

    def run() -> None:
        current = first
        # One past the plan's last segment: recovery reads on to find the end of the WAL.
        while not stop.is_set() and (last is None or current.number <= last.number + 1):
            position = requested()
            ahead = []
            for name in os.listdir(spool):
                if name.startswith("."):
                    continue
                if position and name < position:
                    os.unlink(spool / name)  # recovery is past it
                else:
                    ahead.append(name)
            if len(ahead) >= window:
                stop.wait(0.05)
                continue
            # The spool belongs to the database's OS user: a private temporary name, never a
            # fixed one it could plant a symlink at.
            fd, tmp = temp_beside(spool / current.name)
            os.close(fd)
            try:
                if not archive.fetch(current.name, tmp):
                    tmp.unlink(missing_ok=True)
                    _mark(spool / f".absent-{current.name}")  # the end of the archive
                    return
                chown_tree(tmp, os_user)
                os.replace(tmp, spool / current.name)
            except Exception:
                tmp.unlink(missing_ok=True)
                return  # prefetch is an optimisation; restore_command falls back to wal-fetch
            current = current.next()

    worker = threading.Thread(target=run, name="wal-prefetch", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=30)
        shutil.rmtree(spool, ignore_errors=True)
