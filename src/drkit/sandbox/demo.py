"""`drkit demo`: the whole job on the embedded sandbox stack.

Sandbox up (PostgreSQL, Redis, S3, Hasura, MeiliSearch with an nchat-like dataset), `drkit
check`, one stack-wide restore point (`backup --all`), then every drill of the monthly
rotation, each on an isolated copy restored from those backups: database corruption, a
Redis service recovery, a data loss recovered by point-in-time recovery, a full outage.
Each drill injects its failure for real and measures RTO and RPO against the targets; the
CLI prints the summary and writes an HTML report per drill.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drkit.config.loader import load_stack
from drkit.domain.checks import any_critical_failure
from drkit.domain.errors import OperationError
from drkit.domain.journal import Journal
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.drills.run import DRILLS, DrillRequest, run_drill
from drkit.engines.runbooks.run import OnStep
from drkit.engines.stack.check import run_checks
from drkit.engines.stack.sets import backup_set
from drkit.infra.clock import SystemClock
from drkit.sandbox import stack as sandbox_stack
from drkit.sandbox.drill_env import IsolatedSandbox
from drkit.sandbox.stack import SandboxOptions


@dataclass
class DemoResult:
    sandbox_dir: Path
    workspace: Workspace | None = None
    setup: list[tuple[str, float, str]] = field(default_factory=list)  # step, seconds, what
    drills: list[Journal] = field(default_factory=list)
    seconds: float = 0.0


def run_demo(
    directory: Path | None,
    *,
    keep: bool,
    say: Callable[[str], None],
    on_step: OnStep | None,
    drkit_argv: list[str],
    drills: tuple[str, ...] = DRILLS,
) -> DemoResult:
    clock = SystemClock()
    began = clock.monotonic()
    root = directory or Path(tempfile.mkdtemp(prefix="drkit-demo-"))
    if directory is None:
        root.rmdir()
    result = DemoResult(root)
    try:
        started = clock.monotonic()
        ws = _up(root)
        result.workspace = ws
        result.setup.append(("sandbox up", clock.monotonic() - started, str(root)))
        for name, work in (("check", _check), ("backup --all", lambda w: _set(w, say, drkit_argv))):
            started = clock.monotonic()
            detail = work(ws)
            result.setup.append((name, clock.monotonic() - started, detail))
        for name in drills:
            say(f"drill {name}")
            journal = run_drill(
                ws, IsolatedSandbox(), DrillRequest(name, tuple(drkit_argv)), say=say, on_step=on_step
            )
            result.drills.append(journal)
    finally:
        if not keep and (root / "stack.yaml").exists():
            sandbox_stack.down(root)
            shutil.rmtree(root, ignore_errors=True)
        result.seconds = clock.monotonic() - began
    return result


def _up(root: Path) -> Workspace:
    box = sandbox_stack.up(root, SandboxOptions())
    return open_workspace(load_stack(box.config_path))


def _check(ws: Workspace) -> str:
    results = run_checks(ws)
    if any_critical_failure(results):
        failed = [f"{r.name}: {r.detail}" for r in results if r.failed_critically]
        raise OperationError("; ".join(failed))
    return f"{len(results)} checks passed"


def _set(ws: Workspace, say: Callable[[str], None], drkit_argv: list[str]) -> str:
    made = backup_set(ws, say=say, drkit_argv=drkit_argv)
    return f"set {made.set_id}: " + ", ".join(f"{k} {v}" for k, v in sorted(made.backups.items()))
