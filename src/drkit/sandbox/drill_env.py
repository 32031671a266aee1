"""The isolated copy a drill breaks: a sandbox stack of its own (its own directory, ports,
repository and state), with the live stack's name and its service names, started empty and
then restored from the live stack's newest set by the drill engine. Removed afterwards
unless asked to keep it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from drkit.config.loader import load_stack
from drkit.domain.backup import BackupKind
from drkit.domain.errors import UsageError
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.choose import newest
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.sandbox import stack as sandbox_stack
from drkit.sandbox.seed import SeedSize
from drkit.sandbox.stack import SandboxOptions, available_parts

MINIMAL_SEED = SeedSize(users=1, channels=1, messages=1, attachments=1)  # replaced by the restore


@dataclass
class IsolatedSandbox:
    """An Environment (engines.drills.run) built by the sandbox code."""

    keep: bool = False
    parent: Path | None = None
    isolated: bool = True
    pg_bin_dir: str | None = None  # the server binaries the copy runs; None: chosen by `copy_bin_dir`
    root: Path | None = field(default=None, init=False)

    def build(self, live: Workspace) -> Workspace:
        parts = set(available_parts())
        wanted = tuple(n for n, s in live.stack.services.items() if n in parts)
        if "postgres" not in wanted:
            raise UsageError("an isolated drill copies a stack with a `postgres` service")
        pg = live.stack.services["postgres"]
        directory = Path(tempfile.mkdtemp(prefix="drkit-drill-", dir=self.parent or tempfile.gettempdir()))
        directory.rmdir()
        self.root = directory
        options = SandboxOptions(
            wal_mode=pg.postgres.wal_mode.value if pg.postgres else "archive",
            seed=MINIMAL_SEED,
            stack_name=live.stack.name,
            services=wanted,
            pg_bin_dir=copy_bin_dir(live, self.pg_bin_dir),
        )
        try:
            box = sandbox_stack.up(directory, options)
        except BaseException:  # a copy that did not come up: stop what of it did start
            with contextlib.suppress(Exception):
                self.teardown()
            raise
        return open_workspace(load_stack(box.config_path), clock=live.clock)

    def teardown(self) -> None:
        if self.root is None or not self.root.exists():
            return
        sandbox_stack.down(self.root)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def copy_bin_dir(live: Workspace, requested: str | None) -> str | None:
    """PostgreSQL binaries of the major the live stack's newest base backup was taken on: the
    one asked for, the live runtime's own `bin_dir`, or Debian's for that major. A copy
    restored with another major's binaries would be refused (the data directory's
    PG_VERSION), so a missing major is named here, before anything is built."""
    if requested:
        return requested
    pg = live.stack.services["postgres"]
    if pg.runtime.bin_dir:
        return pg.runtime.bin_dir
    bases = [
        m for m in list_backups(live.repo, live.stack.name, "postgres").complete if m.kind is BackupKind.BASE
    ]
    chosen = newest(bases, live.clock.now())  # the one rule: a future-dated backup does not count
    if chosen is None:
        return None  # nothing to restore: the drill says so itself
    newest_base = chosen.require_postgres()
    major = newest_base.server_version // 10000
    debian = f"/usr/lib/postgresql/{major}/bin"
    if os.access(os.path.join(debian, "initdb"), os.X_OK):
        return debian
    raise UsageError(
        f"the newest PostgreSQL base backup is of PostgreSQL {major}; the isolated copy needs "
        f"PostgreSQL {major}'s server binaries (initdb, pg_ctl, postgres) on this host",
        hint=f"install postgresql-{major}, or pass --pg-bin-dir DIR (a directory holding them)",
    )
