"""Bring the whole stack back to one moment: a recorded set, or any time T.

Services are restored in dependency order (PostgreSQL first: Hasura's metadata and the
app's data live there), each to the set's backup (or the newest one at or before T;
objects as of T), then the services are checked against each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DrkitError, NotFoundError, OperationError, UsageError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.sets import RestoreSet
from drkit.domain.stack import Service
from drkit.engines.core.registry import engine_for
from drkit.engines.core.restore_choice import choose_for_restore
from drkit.engines.core.set_refs import find_set
from drkit.engines.core.types import RestoreOptions
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.restore import RestoreRequest, plan, restore
from drkit.engines.stack.cross_checks import cross_service_checks
from drkit.engines.stack.sets import ordered_services

Say = Callable[[str], None]


@dataclass(frozen=True)
class ServiceRecovery:
    service: str
    backup_id: str
    seconds: float
    ok: bool
    detail: str


@dataclass(frozen=True)
class StackRestoreReport:
    set_id: str | None
    target: str
    steps: tuple[ServiceRecovery, ...]
    checks: tuple[CheckResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and not any(c.failed_critically for c in self.checks)


@dataclass(frozen=True)
class PlannedStep:
    service: str
    kind: str
    backup_id: str | None  # None: objects, restored as of the moment from the newest copies
    detail: str


@dataclass(frozen=True)
class StackPlan:
    chosen: RestoreSet | None  # None: to a time
    moment: datetime
    steps: tuple[PlannedStep, ...]
    timeline: int | None = None  # PostgreSQL's branch, when the operator named it (--timeline)

    @property
    def set_id(self) -> str | None:
        return self.chosen.set_id if self.chosen else None

    @property
    def target(self) -> str:
        return f"set {self.chosen.set_id}" if self.chosen else f"time {self.moment.isoformat()}"

    @property
    def question(self) -> str:
        return f"replace the live data of every service with its state at {self.target}?"


def plan_stack(
    ws: Workspace,
    *,
    set_id: str | None = None,
    target_time: datetime | None = None,
    timeline: int | None = None,
) -> StackPlan:
    """What each service would be restored from, checked for every service before any is
    touched: a stack is never left half restored because a later service had no backup."""
    if (set_id is None) == (target_time is None):
        raise UsageError("restore the stack to a set (--set ID) or a time (--all --target-time T)")
    chosen = find_set(ws, set_id) if set_id is not None else None
    moment = chosen.created_at if chosen else target_time
    if moment is None:
        raise UsageError("restore the stack to a set (--set ID) or a time (--all --target-time T)")
    steps: list[PlannedStep] = []
    problems: list[str] = []
    hints: list[str] = []
    for service in ordered_services(ws):
        try:
            steps.append(_plan_one(ws, service, chosen, moment, timeline))
        except DrkitError as exc:
            problems.append(f"{service.name}: {exc.message}")
            hints += [f"{service.name}: {exc.hint}"] if exc.hint else []
    stack_plan = StackPlan(chosen, moment, tuple(steps), timeline)
    if problems:
        raise OperationError(
            f"the stack cannot be restored to {stack_plan.target}; nothing was touched:\n  "
            + "\n  ".join(problems),
            hint="; ".join(hints) or None,
        )
    return stack_plan


def _plan_one(
    ws: Workspace, service: Service, chosen: RestoreSet | None, moment: datetime, timeline: int | None
) -> PlannedStep:
    if service.kind == "postgres":
        request = replace(_postgres_request(chosen, moment, service.name, None), timeline=timeline)
        planned = plan(ws, service, request)
        detail = f"{planned.target.describe()}, following timeline {planned.timeline}"
        return PlannedStep(service.name, service.kind, planned.backup.backup_id, detail)
    if chosen is not None:
        backup_id = chosen.backups.get(service.name)
        if backup_id is None:
            raise _StepFailed(f"set {chosen.set_id} holds no backup of {service.name}")
    else:
        backup_id = _newest_before(ws, service, moment)
    detail = f"objects as of {moment.isoformat()}" if backup_id is None else f"backup {backup_id}"
    if _into_volume(service):  # docker is asked now: a missing volume refuses the whole stack
        from drkit.engines.objects.restore_volume import volume_target

        target = volume_target(service)
        detail += f", into the emptied volume {target.volume} of {target.container} (moved aside)"
    return PlannedStep(service.name, service.kind, backup_id, detail)


def _into_volume(service: Service) -> bool:
    return service.kind == "s3" and service.runtime.type == "compose" and bool(service.runtime.volume)


def _postgres_request(
    chosen: RestoreSet | None, moment: datetime, name: str, backup_id: str | None
) -> RestoreRequest:
    if chosen is not None:
        target = RecoveryTarget(TargetKind.NAME, name=chosen.restore_point)
        backup_id = backup_id or chosen.backups.get(name)
    else:
        target = RecoveryTarget(TargetKind.TIME, time=moment)
    return RestoreRequest(target=target, backup_id=backup_id, in_place=True)


def restore_stack(
    ws: Workspace, stack_plan: StackPlan, *, drkit_argv: list[str], say: Say, own_archive: bool = False
) -> StackRestoreReport:
    """Everything in place, as `plan_stack` planned it: the caller has confirmed (this
    replaces live data). `own_archive`: the backups come from another stack (a drill's copy
    restored from production's), so PostgreSQL archives into this stack's repository."""
    chosen = stack_plan.chosen
    began = ws.clock.monotonic()
    steps: list[ServiceRecovery] = []
    for planned in stack_plan.steps:
        service = ws.stack.services[planned.service]
        started = ws.clock.monotonic()
        say(f"restoring {service.name} ...")
        try:
            backup_id, detail = _restore_one(
                ws, service, chosen, stack_plan, planned, drkit_argv, own_archive
            )
            steps.append(
                ServiceRecovery(service.name, backup_id, ws.clock.monotonic() - started, True, detail)
            )
        except DrkitError as exc:
            steps.append(
                ServiceRecovery(service.name, "", ws.clock.monotonic() - started, False, exc.message)
            )
            say(f"{service.name} failed: {exc.message}; stopping (services after it depend on it)")
            break
        say(f"{service.name}: {detail}")
    checks: tuple[CheckResult, ...] = ()
    if all(s.ok for s in steps):
        checks = tuple(cross_service_checks(ws))
    return StackRestoreReport(
        stack_plan.set_id, stack_plan.target, tuple(steps), checks, ws.clock.monotonic() - began
    )


def _restore_one(
    ws: Workspace,
    service: Service,
    chosen: RestoreSet | None,
    stack_plan: StackPlan,
    planned: PlannedStep,
    drkit_argv: list[str],
    own_archive: bool,
) -> tuple[str, str]:
    moment = stack_plan.moment
    if service.kind == "postgres":
        request = replace(
            _postgres_request(chosen, moment, service.name, planned.backup_id),
            own_archive=own_archive,
            timeline=stack_plan.timeline,
        )
        out = restore(ws, service, request, drkit_argv=drkit_argv)
        return (
            out.backup_id,
            f"{request.target.describe()} reached at {out.reached_lsn} in {out.seconds:.1f}s",
        )
    options = RestoreOptions(backup_id=planned.backup_id, target_time=moment, yes=True)
    if _into_volume(service):  # object storage in a container starts over, as Redis's does
        from drkit.engines.objects.restore_volume import restore_in_place

        result = restore_in_place(ws, service, options)
    else:
        result = engine_for(service).restore(ws, service, options)
    failed = [c for c in result.checks if c.status is Status.FAILED]
    if failed:
        raise _StepFailed(f"{failed[0].name}: {failed[0].detail}")
    return result.backup_id, result.detail


def _newest_before(ws: Workspace, service: Service, moment: datetime) -> str | None:
    if service.kind == "s3":
        return None  # objects are restored "as of" the moment from the newest copy
    try:  # the one rule (core/choose.py): newest at or before the moment, never future-dated
        choice = choose_for_restore(ws, service, RestoreOptions(target_time=moment))
    except NotFoundError as exc:
        raise _StepFailed(exc.message) from exc
    return choice.manifest.backup_id


class _StepFailed(DrkitError):
    pass
