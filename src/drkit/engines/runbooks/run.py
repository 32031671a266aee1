"""Run a runbook step by step, journaling each step before and after it runs (fsynced), so a
run killed at any moment resumes with `--resume` from the step it reached: a step whose
journal entry says it completed is never run again; an interrupted step is re-checked with
its `after` check and counted done when that holds, else run again (destructive steps are
written to be safe to re-run from any partial state)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from drkit.domain.errors import DrkitError, OperationError
from drkit.domain.journal import Journal, RunKind, StepRecord, StepStatus, Verdict, new_run_id
from drkit.domain.progress import SILENT, Progress
from drkit.engines.core import journals
from drkit.engines.core.workspace import Workspace
from drkit.engines.runbooks.model import AssumeYes, Check, Runbook, Say, Step, StepContext, StepResult
from drkit.infra.hold import hold

OnStep = Callable[[StepRecord], None]


def new_journal(
    ws: Workspace, runbook: Runbook, kind: RunKind, *, environment: dict[str, Any] | None = None
) -> Journal:
    now = ws.clock.now()
    return Journal(
        run_id=new_run_id(kind, runbook.scenario, now),
        kind=kind,
        scenario=runbook.scenario,
        stack=ws.stack.name,
        started_at=now,
        parameters={**runbook.parameters, "targets": runbook.targets},
        steps=tuple(
            StepRecord(s.name, s.title, destructive=s.destructive, service=s.service) for s in runbook.steps
        ),
        # who to call, as stack.yaml said during this run: the reports show it
        environment={**(environment or {}), **_escalation(ws)},
    )


def _escalation(ws: Workspace) -> dict[str, Any]:
    record = ws.stack.escalation_record()
    return {"escalation": record} if record else {}


def execute(
    ws: Workspace,
    runbook: Runbook,
    journal: Journal,
    *,
    say: Say,
    on_step: OnStep | None = None,
    confirm: Callable[[str], bool] | None = None,
    keep_with: Workspace | None = None,
    progress: Progress = SILENT,
) -> Journal:
    """Run every step not yet done; returns the final journal (saved). Stops at the first
    failed critical step (verdict FAILED); the caller adds measures and the final verdict.
    The journal is kept with `keep_with` (default: `ws`): a drill acts on its copy of the stack
    and keeps its journal with the live stack's."""
    keeper = keep_with or ws
    facts = _facts(journal)
    journal = save(keeper, replace(journal, verdict=Verdict.RUNNING, finished_at=None, error=None))
    for step in runbook.steps:
        record = journal.step(step.name)
        if record.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
            continue
        ctx = StepContext(ws, runbook.parameters, facts, say, confirm or AssumeYes(), progress)
        if _completed_before(step, record, ctx):
            detail = record.detail or "had completed before the interruption (its after-check holds)"
            settled = _settle(step, ctx)
            record = replace(
                record,
                status=StepStatus.SUCCEEDED,
                finished_at=ws.clock.now(),
                detail=detail if settled is None or not settled.detail else f"{detail}; {settled.detail}",
                facts=settled.facts if settled is not None else record.facts,
            )
        elif step.before is not None and (reason := _check(step.before, ctx)) is not None:
            record = replace(record, status=StepStatus.FAILED, detail=f"not started: {reason}")
        else:
            record = replace(record, status=StepStatus.RUNNING, started_at=ws.clock.now(), finished_at=None)
            journal = save(keeper, journal.with_step(record))
            if on_step is not None:  # the step starts: said at once (a RUNNING record)
                on_step(record)
            record = _attempt(ws, step, record, ctx)
        journal = save(keeper, journal.with_step(record))
        if on_step is not None:
            on_step(record)
        if record.status is StepStatus.SUCCEEDED:
            facts.update(record.facts)
        elif step.critical:
            failed = replace(journal, verdict=Verdict.FAILED, error=f"{step.name}: {record.detail}")
            return save(keeper, replace(failed, finished_at=ws.clock.now()))
    return save(keeper, replace(journal, finished_at=ws.clock.now()))


def save(ws: Workspace, journal: Journal) -> Journal:
    """This host first (what --resume reads), then the repository, best effort: a repository
    that cannot be written must not stop a recovery."""
    journals.save_local(ws, journal)
    journals.try_save_remote(ws, journal)
    return journal


def _completed_before(step: Step, record: StepRecord, ctx: StepContext) -> bool:
    return record.status is StepStatus.RUNNING and step.after is not None and _check(step.after, ctx) is None


def _settle(step: Step, ctx: StepContext) -> StepResult | None:
    """What a completed-before step reports on resume (and what it tidies); never fatal."""
    if step.settle is None:
        return None
    try:
        return step.settle(ctx)
    except (DrkitError, OSError) as exc:
        return StepResult(f"could not read what it reported: {exc}")


def _attempt(ws: Workspace, step: Step, running: StepRecord, ctx: StepContext) -> StepRecord:
    hold(f"before-{step.name}")
    try:
        result = _with_timeout(step, ctx)
        hold(f"after-{step.name}")
        if step.after is not None and (reason := _check(step.after, ctx)) is not None:
            raise OperationError(f"it ran, but its check failed: {reason}")
    except (DrkitError, OSError) as exc:
        message = exc.message if isinstance(exc, DrkitError) else f"{exc.strerror or exc}"
        return replace(
            running,
            status=StepStatus.FAILED,
            finished_at=ws.clock.now(),
            detail=_undo(step, ctx, message),
            facts=getattr(exc, "facts", {}),  # StepFailed's evidence
        )
    return replace(
        running,
        status=StepStatus.SUCCEEDED,
        finished_at=ws.clock.now(),
        detail=result.detail,
        facts=result.facts,
    )


def _undo(step: Step, ctx: StepContext, message: str) -> str:
    if step.undo is None:
        return message
    try:
        return f"{message}; undone: {step.undo(ctx)}"
    except (DrkitError, OSError) as exc:
        return f"{message}; the undo failed too: {exc}"


def _with_timeout(step: Step, ctx: StepContext) -> StepResult:
    """The step in a worker thread, waited for at most its timeout. A step that overruns is
    reported failed; its thread cannot be killed and is left to end with the process."""
    outcome: list[StepResult] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(step.run(ctx))
        except BaseException as exc:  # handed to the caller's thread as it is
            errors.append(exc)

    worker = threading.Thread(target=work, name=f"step-{step.name}", daemon=True)
    worker.start()
    worker.join(step.timeout)
    if worker.is_alive():
        raise OperationError(f"did not finish within {step.timeout:.0f}s")
    if errors:
        raise errors[0]
    return outcome[0]


def _check(check: Check, ctx: StepContext) -> str | None:
    try:
        return check(ctx)
    except (DrkitError, OSError) as exc:
        return f"the check could not run: {exc}"


def _facts(journal: Journal) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for record in journal.steps:
        if record.status is StepStatus.SUCCEEDED:
            facts.update(record.facts)
    return facts
