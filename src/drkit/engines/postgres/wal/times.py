"""The newest commit time recorded in an archived segment, for planning a time target.

Read from the WAL itself with pg_waldump, on demand, only for the segments a plan walks
(from the backup's end to the first segment that commits after the target). Each segment
is read together with its successor, so a commit record that starts at the very end of a
segment and runs on into the next one is still found.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from types import TracebackType

from drkit.adapters.postgres.waldump import commit_times
from drkit.domain.wal import Segment
from drkit.engines.postgres.wal.archive import WalArchive


class CommitTimes:
    """`last_commit(segment)` for ArchiveView; a context manager owning a scratch dir."""

    def __init__(self, archive: WalArchive, bin_dir: str | None, scratch_parent: Path | None = None) -> None:
        self.archive = archive
        self.bin_dir = bin_dir
        self._parent = scratch_parent
        self._dir: Path | None = None
        self._known: dict[str, datetime | None] = {}

    def __enter__(self) -> CommitTimes:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _scratch(self) -> Path:
        if self._dir is None:
            if self._parent is not None:
                self._parent.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix="wal-times-", dir=self._parent))
        return self._dir

    def _have(self, segment: Segment) -> bool:
        path = self._scratch() / segment.name
        return path.exists() or self.archive.fetch(segment.name, path)

    def __call__(self, segment: Segment) -> datetime | None:
        if segment.name not in self._known:
            self._known[segment.name] = self._read(segment)
        return self._known[segment.name]

    def _read(self, segment: Segment) -> datetime | None:
        scratch = self._scratch()
        keep = {segment.name, segment.next().name}
        for old in scratch.iterdir():
            if old.name not in keep:
                old.unlink()
        if not self._have(segment):
            return None
        self._have(segment.next())  # absent at the end of the archive: fine
        found = commit_times(
            scratch, segment.timeline, segment.start, segment.next().start, bin_dir=self.bin_dir
        )
        return max(found, default=None)
