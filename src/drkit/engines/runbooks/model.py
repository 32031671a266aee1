"""What a runbook is: an ordered list of steps, each with a check before and after, a
timeout, and an undo where one is safe. Steps are built with concrete targets (which
containers, which backup, which directories move where) so the plan shown by `--dry-run`
is exactly what runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.progress import SILENT, Progress
from drkit.engines.core.workspace import Workspace

Say = Callable[[str], None]


class AssumeYes:
    """--yes (and runs with no one to ask): every question answered yes without asking. A step
    that needs a human's action (a manual step) tells this apart and records it as assumed."""

    def __call__(self, _question: str) -> bool:
        return True


@dataclass
class StepContext:
    """What a step sees: the workspace, the runbook's parameters and the facts recorded by
    the steps before it (from the journal, so a resumed run sees the same facts). What a
    later step needs to act on (a path, a backup id) is decided when the runbook is built
    and passed as a parameter: a step killed after its work but before its journal entry
    records no facts."""

    ws: Workspace
    parameters: dict[str, Any]
    facts: dict[str, Any]
    say: Say
    confirm: Callable[[str], bool] = field(default_factory=AssumeYes)  # the CLI asks on a terminal
    progress: Progress = SILENT  # steps and amounts of long work inside a step (domain/progress.py)


@dataclass(frozen=True)
class StepResult:
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)


class StepFailed(OperationError):
    """A step that fails with evidence worth keeping: its facts are journaled with the
    failure (a refused failover keeps the lag it measured)."""

    def __init__(self, message: str, facts: dict[str, Any]) -> None:
        super().__init__(message)
        self.facts = facts


Check = Callable[[StepContext], str | None]  # None: holds; else why it does not


@dataclass(frozen=True)
class Step:
    name: str
    title: str  # concrete: "move /srv/pg/data aside (kept)", shown in the plan
    run: Callable[[StepContext], StepResult]
    destructive: bool = False
    service: str | None = None
    before: Check | None = None  # must hold before the step runs
    after: Check | None = None  # must hold after; on --resume, tells whether an interrupted step completed
    undo: Callable[[StepContext], str] | None = None  # safe undo, run when the step fails
    # On --resume, for a step found complete by its after check: tidy what the killed run
    # left and report the facts it had no time to record.
    settle: Callable[[StepContext], StepResult] | None = None
    timeout: float = 600.0
    critical: bool = True  # a failed non-critical step is recorded and the runbook goes on

    def __post_init__(self) -> None:
        if self.destructive and self.after is None:
            raise UsageError(
                f"step {self.name}: a destructive step needs an `after` check, so --resume can "
                "tell whether it completed and never runs it twice"
            )


@dataclass(frozen=True)
class Runbook:
    scenario: str
    steps: tuple[Step, ...]
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON-able; stored in the journal
    targets: dict[str, Any] = field(default_factory=dict)  # the concrete facts the plan shows

    @property
    def destructive(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.destructive)
