"""Steps every scenario uses: stop, start, pause and resume services through their runtimes
in dependency order, and the checks that end a recovery (integrity, smoke, health).

Each step acts on the services named when the runbook was built, so the plan and the
run agree, and each is safe to run again (stopping a stopped service, starting a healthy
one, re-running checks)."""

from __future__ import annotations

from collections.abc import Sequence

from drkit.adapters.probes import check, default_probe, probe_timeout
from drkit.domain.checks import Status
from drkit.domain.errors import OperationError
from drkit.domain.stack import Stack
from drkit.engines.runbooks.model import Check, Step, StepContext, StepResult
from drkit.engines.stack.graph import ServiceGraph
from drkit.engines.stack.integrity import PostgresBackend, run_integrity
from drkit.engines.stack.smoke import run_smoke
from drkit.engines.stack.start import check_health, start_services, stop_services
from drkit.runtimes.factory import runtime_for
from drkit.runtimes.port import Runtime


def dependents_of(stack: Stack, name: str) -> list[str]:
    """What needs `name`, transitively, in start order (its writers, for PostgreSQL)."""
    graph = ServiceGraph.from_stack(stack)
    others = graph.with_dependents([name]) - {name}
    return [n for level in graph.levels(others) for n in level]


def _runtime(ctx: StepContext, name: str) -> Runtime:
    stack = ctx.ws.stack
    return runtime_for(stack.services[name], stack.state_dir)


def _none_running(names: Sequence[str]) -> Check:
    def holds(ctx: StepContext) -> str | None:
        running = [n for n in names if _runtime(ctx, n).is_running()]
        return f"still running: {', '.join(running)}" if running else None

    return holds


def stop_step(name: str, services: Sequence[str], why: str) -> Step:
    names = list(services)

    def run(ctx: StepContext) -> StepResult:
        if not names:
            return StepResult("nothing to stop")
        report = stop_services(
            ctx.ws.stack, names, runtime_for=lambda s: runtime_for(s, ctx.ws.stack.state_dir)
        )
        if not report.ok:
            failed = "; ".join(f"{s.service}: {s.detail}" for s in report.failures)
            raise OperationError(f"could not stop {failed}")
        return StepResult(f"stopped {', '.join(s.service for s in report.steps)} ({why})")

    def undo(ctx: StepContext) -> str:
        return start_now(ctx, names)

    return Step(
        name,
        f"stop {', '.join(names) or '(nothing)'} through their runtimes ({why})",
        run,
        destructive=True,
        after=_none_running(names),
        undo=undo,
        timeout=300,
    )


def start_step(name: str, services: Sequence[str], why: str) -> Step:
    names = list(services)

    def run(ctx: StepContext) -> StepResult:
        return StepResult(start_now(ctx, names))

    def healthy(ctx: StepContext) -> str | None:
        sick = [h for h in check_health(ctx.ws.stack, names) if not h.healthy]
        return "; ".join(f"{h.service}: {h.detail}" for h in sick) or None

    return Step(
        name,
        f"start {', '.join(names) or '(nothing)'} in dependency order, each until healthy ({why})",
        run,
        after=healthy if names else None,
        timeout=900,
    )


def start_now(ctx: StepContext, names: list[str]) -> str:
    """Start `names` with what they need, each until healthy; OperationError naming the sick."""
    if not names:
        return "nothing to start"
    started: dict[str, float] = {}
    report = start_services(ctx.ws.stack, names, runtime_for=lambda s: runtime_for(s, ctx.ws.stack.state_dir))
    for step in report.steps:
        started[step.service] = step.started_after + step.seconds
    if not report.ok:
        failed = "; ".join(f"{s.service}: {s.detail}" for s in report.failures)
        raise OperationError(f"not healthy: {failed}")
    return ", ".join(f"{n} healthy after {t:.1f}s" for n, t in started.items())


def pause_step(name: str, services: Sequence[str]) -> Step:
    """Pause writers (SIGSTOP / docker pause): connections stay, nothing is written."""
    names = list(services)

    def run(ctx: StepContext) -> StepResult:
        for n in names:
            _runtime(ctx, n).pause()
        return StepResult(f"paused {', '.join(names)}" if names else "no writers to pause")

    def undo(ctx: StepContext) -> str:
        for n in names:
            _runtime(ctx, n).unpause()
        return f"resumed {', '.join(names)}"

    return Step(name, f"pause the writers: {', '.join(names) or '(none)'}", run, undo=undo, timeout=120)


def resume_step(name: str, services: Sequence[str]) -> Step:
    names = list(services)

    def run(ctx: StepContext) -> StepResult:
        for n in names:
            runtime = _runtime(ctx, n)
            runtime.unpause()
            if not runtime.is_running():
                runtime.start()
        return StepResult(f"resumed {', '.join(names)}" if names else "no writers to resume")

    return Step(name, f"resume the writers: {', '.join(names) or '(none)'}", run, timeout=300)


def integrity_step(name: str = "integrity") -> Step:
    def run(ctx: StepContext) -> StepResult:
        report = run_integrity(ctx.ws.stack, PostgresBackend(), clock=ctx.ws.clock)
        bad = [r for r in report.results if r.failed_critically]
        if bad:
            raise OperationError("; ".join(f"{r.name}: {r.detail or r.status.value}" for r in bad))
        warned = [r.name for r in report.results if r.status is Status.WARNING]
        detail = f"{len(report.results)} checks passed" + (f" ({len(warned)} warnings)" if warned else "")
        return StepResult(detail, {"integrity_checks": len(report.results)})

    return Step(name, "run the data integrity checks of stack.yaml", run, timeout=1800)


def smoke_step(name: str = "smoke") -> Step:
    def run(ctx: StepContext) -> StepResult:
        results = run_smoke(ctx.ws.stack)
        bad = [r for r in results if r.failed_critically]
        if bad:
            raise OperationError("; ".join(f"{r.name}: {r.detail}" for r in bad))
        return StepResult(
            f"{len(results)} smoke checks passed" if results else "no smoke checks in stack.yaml"
        )

    return Step(name, "run the smoke checks of stack.yaml (does the stack do its job?)", run, timeout=300)


def probe_once(ctx: StepContext, service: str) -> tuple[bool, str]:
    svc = ctx.ws.stack.services[service]
    probe = default_probe(svc)
    outcome = check(svc, probe, timeout=min(probe_timeout(probe), 15.0) or 15.0)
    return outcome.healthy, outcome.detail
