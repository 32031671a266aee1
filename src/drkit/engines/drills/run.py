"""`drkit drill SCENARIO`: rehearse a recovery for real and measure it.

1. The drill's stack: an isolated copy restored from the live stack's newest set (the
   default), or, with `--target live --yes`, the configured stack itself.
2. A base backup of that stack (what the recovery will start from), then its state is
   captured (every table's rows, Redis keys, objects, index counts, Hasura metadata).
3. The failure is injected for real; its moment is the start of the RTO clock.
4. The scenario's recovery runbook runs on that stack, journaled with the drill.
5. The state is captured again and compared with step 2; the RTO and RPO of each service
   are measured against its targets. Verdict: passed, missed-target (exit 4) or failed (1).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from drkit import __version__
from drkit.adapters.postgres.client import connect, service_dsn
from drkit.domain.backup import Manifest
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.journal import Journal, RunKind, StepRecord, Verdict, new_run_id, verdict_of
from drkit.domain.stack import Service, WalMode
from drkit.domain.wal import Lsn, Segment
from drkit.engines.core.workspace import Workspace
from drkit.engines.drills import inject, state
from drkit.engines.drills.isolate import seed_from_live
from drkit.engines.drills.state import describe_servers
from drkit.engines.postgres.wal.archive import archive_for
from drkit.engines.postgres.wal.stream import flush_spool
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepResult
from drkit.engines.runbooks.recover import SCENARIOS, finish
from drkit.engines.runbooks.run import OnStep, execute, save
from drkit.engines.stack.backup import backup_service, backup_targets
from drkit.infra.wait import wait_for

DRILLS = ("db-corruption", "service-redis", "data-loss", "full-outage")  # the monthly rotation's order
KNOWN = (*DRILLS, "service-s3")
ROTATION = {1: "db-corruption", 2: "service-redis", 3: "data-loss", 4: "full-outage"}


class Environment(Protocol):
    """Where a drill runs: `build` gives the workspace of the stack to break."""

    isolated: bool

    def build(self, live: Workspace) -> Workspace: ...

    def teardown(self) -> None: ...


@dataclass
class LiveEnvironment:
    isolated: bool = False

    def build(self, live: Workspace) -> Workspace:
        return live

    def teardown(self) -> None:
        return None


@dataclass(frozen=True)
class DrillRequest:
    scenario: str  # one of DRILLS
    drkit_argv: tuple[str, ...]


def rotation_for(day: datetime) -> str:
    """The source's monthly rotation: week 1 database restore, 2 service recovery, 3 PITR,
    4 (and 5) full disaster recovery."""
    return ROTATION[min(4, (day.day - 1) // 7 + 1)]


def run_drill(
    live: Workspace,
    env: Environment,
    request: DrillRequest,
    *,
    say: Callable[[str], None],
    on_step: OnStep | None,
) -> Journal:
    if request.scenario not in KNOWN:
        raise UsageError(f"no drill {request.scenario!r} (known: {', '.join(KNOWN)})")
    began = live.clock.now()
    copy = env.build(live)
    try:
        return _drill(live, copy, env, request, began, say, on_step)
    finally:
        env.teardown()


def _drill(
    live: Workspace,
    copy: Workspace,
    env: Environment,
    request: DrillRequest,
    began: datetime,
    say: Callable[[str], None],
    on_step: OnStep | None,
) -> Journal:
    captured: dict[str, Any] = {}
    setup = Runbook(f"drill-{request.scenario}", _setup_steps(live, copy, env, request, captured))
    journal = Journal(
        run_id=new_run_id(RunKind.DRILL, request.scenario, began),
        kind=RunKind.DRILL,
        scenario=request.scenario,
        stack=live.stack.name,
        started_at=began,
        parameters={"drill": request.scenario, "target": "isolated" if env.isolated else "live"},
        steps=tuple(StepRecord(s.name, s.title, s.destructive, s.service) for s in setup.steps),
        environment={**_environment(copy), **_escalation(live)},  # who to call is the live stack's
    )
    journal = execute(copy, setup, journal, say=say, on_step=on_step, keep_with=live)
    if journal.verdict is Verdict.FAILED:
        return finish(live, journal)
    injected = journal.step("inject-failure")
    when = injected.facts.get("failure_at")
    failure_at = datetime.fromisoformat(str(when)) if when else injected.finished_at or live.clock.now()
    recovery = _recovery(copy, request, injected.facts)
    verify = Runbook("verify", (_verify_step(captured),))
    journal = replace(
        journal,
        failure_at=failure_at,
        parameters={**journal.parameters, **recovery.parameters, "targets": recovery.targets},
        steps=journal.steps
        + tuple(
            StepRecord(s.name, s.title, s.destructive, s.service) for s in (*recovery.steps, *verify.steps)
        ),
    )
    journal = execute(copy, recovery, journal, say=say, on_step=on_step, keep_with=live)
    if journal.verdict is not Verdict.FAILED:
        journal = execute(copy, verify, journal, say=say, on_step=on_step, keep_with=live)
    measured = finish(live, save(live, journal), incident=failure_at)
    if measured.verdict is Verdict.FAILED:
        return measured
    return save(live, _nothing_lost(measured, sorted(captured), failure_at))


def _nothing_lost(journal: Journal, compared: list[str], failure_at: datetime) -> Journal:
    """Services that came back equal to their state just before the failure lost nothing:
    their RPO is 0 unless the recovery measured one (a PITR to a time before the failure)."""
    measures = tuple(
        replace(m, rpo_seconds=0.0, recovered_to=failure_at)
        if m.rpo_seconds is None and m.service in compared
        else m
        for m in journal.measures
    )
    return replace(journal, measures=measures, verdict=verdict_of(measures))


def _setup_steps(
    live: Workspace, copy: Workspace, env: Environment, request: DrillRequest, captured: dict[str, Any]
) -> tuple[Step, ...]:
    chosen: list[Step] = []
    if env.isolated:

        def seed(ctx: StepContext) -> StepResult:
            seeded = seed_from_live(live, copy, drkit_argv=list(request.drkit_argv), say=ctx.say)
            if not seeded.report.ok:
                raise OperationError("the copy restored from the live backups failed its checks")
            return StepResult(
                f"restored set {seeded.chosen.set_id} of the live stack into the copy "
                f"({seeded.keys} objects, {seeded.bytes >> 10} KiB) in {seeded.report.seconds:.1f}s",
                {"set": seeded.chosen.set_id, "restore_seconds": seeded.report.seconds},
            )

        chosen.append(
            Step(
                "restore-from-backups",
                "restore the live stack's newest set into the copy",
                seed,
                timeout=7200,
            )
        )

    def baseline(ctx: StepContext) -> StepResult:
        services = backup_targets(list(ctx.ws.stack.services.values()))
        taken = []
        for service in services:
            manifest = backup_service(ctx.ws, service).manifest
            if manifest.postgres is not None:
                wait_restorable(ctx.ws, service, manifest)
            taken.append(manifest.backup_id)
        return StepResult(f"backups {', '.join(taken)}", {"baseline": taken})

    def capture(ctx: StepContext) -> StepResult:
        captured.update(state.capture(ctx.ws))
        return StepResult(f"captured {', '.join(f'{k} ({len(v)} items)' for k, v in captured.items())}")

    def failure(ctx: StepContext) -> StepResult:
        injected = inject.INJECTIONS[request.scenario](ctx.ws, None)
        return StepResult(injected.what, injected.facts)

    chosen += [
        Step("baseline-backup", "back up every service of the drill's stack", baseline, timeout=7200),
        Step("capture", "capture the state to compare after the recovery", capture, timeout=1800),
        Step(
            "inject-failure",
            f"inject the failure: {request.scenario}",
            failure,
            destructive=False,
            timeout=600,
        ),
    ]
    return tuple(chosen)


def wait_restorable(ws: Workspace, service: Service, manifest: Manifest) -> None:
    """Until the WAL segment holding the base backup's end is in the archive: the backup
    cannot be restored before (pg_basebackup does not wait for the archiver)."""
    pg = manifest.require_postgres()
    last = Segment.containing(Lsn.parse(pg.stop_lsn), pg.timeline, pg.wal_segment_size).name
    archive = archive_for(ws, service)
    if service.postgres and service.postgres.wal_mode is WalMode.STREAM:
        flush_spool(ws, service)
    with connect(service_dsn(service)) as conn:
        conn.execute("select pg_switch_wal()")
    wait_for(lambda: archive.find(last) is not None, timeout=120, what=f"WAL segment {last} in the archive")


def _recovery(copy: Workspace, request: DrillRequest, facts: dict[str, Any]) -> Runbook:
    scenario, service = request.scenario, None
    if scenario.startswith("service-"):
        kind = scenario.removeprefix("service-")
        scenario = "service"
        service = next((n for n, s in copy.stack.services.items() if s.kind == kind), None)
        if service is None:
            raise UsageError(f"the drill's stack has no {kind} service")
    module = SCENARIOS[scenario]
    parameters: dict[str, Any] = module.plan(
        copy,
        drkit_argv=list(request.drkit_argv),
        target_time=facts.get("target_time"),
        copy_back=tuple(facts.get("copy_back", ())),
        service=service,
        force_restore=service is not None,
    )
    runbook: Runbook = module.build({**parameters, "scenario": scenario, "since": None})
    return runbook


def _verify_step(captured: dict[str, Any]) -> Step:
    def run(ctx: StepContext) -> StepResult:
        now = state.capture(ctx.ws)
        diffs = {k: v for k, v in state.compare(captured, now).items() if v}
        if diffs:
            raise OperationError(
                "; ".join(
                    f"{k}: {v[0]}" + (f" (+{len(v) - 1} more)" if len(v) > 1 else "")
                    for k, v in diffs.items()
                )
            )
        return StepResult(
            f"every service equals its state before the failure ({', '.join(sorted(captured))})"
        )

    return Step(
        "verify-state", "compare every service with its state captured before the failure", run, timeout=1800
    )


def _escalation(live: Workspace) -> dict[str, Any]:
    record = live.stack.escalation_record()
    return {"escalation": record} if record else {}


def _environment(ws: Workspace) -> dict[str, Any]:
    return {
        "drkit": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs",
        "host": platform.node(),
        "services": {n: s.kind for n, s in ws.stack.services.items()},
        **describe_servers(ws),
    }
