"""Extract a base backup (an incremental: its whole chain, the full one first), checked
beforehand (preflight), into a new directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from drkit.domain.backup import Manifest
from drkit.domain.stack import Service
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.chain_restore import extract_chain, restore_workers
from drkit.engines.postgres.preflight import Checked
from drkit.engines.postgres.tar_restore import restore_parts
from drkit.infra.hold import hold
from drkit.infra.ownership import chown_tree


def extract_backup(
    ws: Workspace,
    service: Service,
    chain: tuple[Manifest, ...],
    checked: Checked,
    dest: Path,
    progress: Callable[[int], None] | None,
) -> None:
    policy = service.postgres
    parallel = restore_workers(policy.parallel if policy else 2)

    def step(done: int) -> None:
        hold("extract")  # a part is written, others are not
        if progress:
            progress(done)

    if len(chain) > 1:
        extract_chain(
            ws.repo, ws.codec, ws.stack.name, service.name, chain, dest, parallel=parallel, progress=step
        )
    else:
        directory = backup_dir(ws.stack.name, service.name, chain[0].backup_id)
        restore_parts(
            ws.repo,
            ws.codec,
            directory,
            checked.parts,
            checked.members,
            dest,
            parallel=parallel,
            progress=step,
        )
    chown_tree(dest, service.runtime.os_user)
