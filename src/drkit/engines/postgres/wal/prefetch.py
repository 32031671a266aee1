"""Prefetch the WAL a recovery will ask for, so restore_command is a copy, not a process.

PostgreSQL fetches one segment at a time through restore_command; starting drkit for each
costs about half a second. While a restore runs, the spool server (wal/spool.py) keeps a
window of the next segments decompressed in `<data_dir>/drkit-prefetch/`; restore_command
copies a prefetched file into place and falls back to `drkit wal-fetch` (or, in a container,
to asking the server) for anything else (history files, the streamed partial, segments
past the window).
"""

from __future__ import annotations

import pwd
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drkit.adapters.postgres.recovery_conf import shell_word
from drkit.domain.wal import Segment, TimelineSpan
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.postgres.wal.identity import read_data_dir
from drkit.engines.postgres.wal.spool import ABSENT, REQUESTED, SpoolDir, SpoolServer

PREFETCH_DIR = "drkit-prefetch"
__all__ = ["PREFETCH_DIR", "REQUESTED", "prefetch_restore_command", "prefetching"]


def prefetch_restore_command(data_dir: Path, fallback: str) -> str:
    """Copy (PostgreSQL may ask for the same segment twice) and note the request, so the
    prefetcher knows how far recovery got; `.absent-NAME` answers "not in the archive"
    (the server wrote it after finding the archive present and without NAME) without a
    process.

    Exit 1 means "no such file" to PostgreSQL and ends recovery, so only the marker gives it:
    a copy that fails (a full pg_wal, the file pruned meanwhile) falls back to `wal-fetch`,
    which exits 126 on any failure and so stops recovery instead of ending it early."""
    s = shell_word(str(data_dir / PREFETCH_DIR))  # quoted; %f and %p are safe names
    return (
        f"if [ -f {s}/%f ] && cp {s}/%f %p; then echo %f > {s}/{REQUESTED} || true; "
        f"elif [ -f {s}/{ABSENT}%f ]; then exit 1; "
        f"else {fallback}; fi"
    )


@contextmanager
def prefetching(
    archive: WalArchive,
    data_dir: Path,
    first: Segment,
    last: Segment | None,
    *,
    os_user: str | None,
    owner: tuple[int, int] | None = None,
    window: int = 16,
    path: tuple[TimelineSpan, ...] = (),
) -> Iterator[SpoolServer]:
    """Serve WAL into `data_dir`'s spool while the body runs (the server is started there).
    The spool and its files belong to `owner` (uid, gid), else to `os_user`. What is served
    is checked against the cluster in `data_dir` (the restored backup's pg_control). `path`:
    the plan's timeline path, so prefetch follows recovery across a timeline switch."""
    if owner is None and os_user:
        entry = pwd.getpwnam(os_user)
        owner = (entry.pw_uid, entry.pw_gid)
    spool = SpoolDir(data_dir / PREFETCH_DIR, owner)
    stop = threading.Event()
    worker: threading.Thread | None = None
    try:
        spool.clear()
        local = archive.for_cluster(read_data_dir(data_dir))
        server = SpoolServer(local, spool, first, last, window, path)
        server.mark_absent_histories()
        worker = threading.Thread(target=server.run, args=(stop,), name="wal-spool", daemon=True)
        worker.start()
        yield server
    finally:
        stop.set()
        if worker is not None:
            worker.join(timeout=30)
        spool.close()
        shutil.rmtree(spool.path, ignore_errors=True)  # never follows a link put in its place
