"""Extract a base backup, checked beforehand (preflight), into a new directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from drkit.domain.backup import Manifest
from drkit.domain.stack import Service
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.preflight import Checked
from drkit.engines.postgres.tar_restore import restore_parts
from drkit.infra.hold import hold
from drkit.infra.ownership import chown_tree


def extract_backup(
    ws: Workspace,
    service: Service,
    m: Manifest,
    checked: Checked,
    dest: Path,
    progress: Callable[[int], None] | None,
) -> None:
    directory = backup_dir(ws.stack.name, service.name, m.backup_id)
    policy = service.postgres

    def step(done: int) -> None:
        hold("extract")  # a part is written, others are not
        if progress:
            progress(done)

    restore_parts(
        ws.repo,
        ws.codec,
        directory,
        checked.parts,
        checked.members,
        dest,
        parallel=policy.parallel if policy else 2,
        progress=step,
    )
    chown_tree(dest, service.runtime.os_user)
