"""Start, stop and probe the stack in dependency order, and measure how long each took.

Start walks the graph level by level; the services of one level start in parallel and
each waits (with backoff) for its health probe, up to the probe's timeout. A service that
never gets healthy is reported with its last probe error; what depends on it is not
started, what is already up stays up, and independent services still start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from drkit.adapters.probes import (
    PROBE_ATTEMPT_TIMEOUT,
    ProbeFailed,
    ProbeOutcome,
    check,
    default_probe,
    describe_probe,
    probe_timeout,
)
from drkit.domain.errors import DrkitError
from drkit.domain.stack import HealthProbe, Service, Stack
from drkit.engines.stack.graph import ServiceGraph
from drkit.infra.clock import Clock, SystemClock
from drkit.infra.wait import wait_for
from drkit.runtimes.port import Runtime

RuntimeFor = Callable[[Service], Runtime]
Prober = Callable[[Service, HealthProbe, float], ProbeOutcome]
MAX_PARALLEL = 8
T = TypeVar("T")


def default_prober(service: Service, probe: HealthProbe, timeout: float) -> ProbeOutcome:
    return check(service, probe, timeout=timeout)


class StartStatus(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # started, but its probe never passed in time
    FAILED = "failed"  # the runtime refused to start it
    SKIPPED = "skipped"  # something it depends on is not healthy


class StopStatus(StrEnum):
    STOPPED = "stopped"
    FAILED = "failed"
    SKIPPED = "skipped"  # something that depends on it did not stop


@dataclass(frozen=True)
class ServiceStep:
    """What happened to one service: its dependency level, status, seconds to healthy (or to
    stopped), why, and when (seconds after the run began) it was acted on."""

    service: str
    level: int
    status: str
    seconds: float
    detail: str = ""
    started_after: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in (StartStatus.HEALTHY, StopStatus.STOPPED)


@dataclass(frozen=True)
class StackReport:
    action: str
    steps: tuple[ServiceStep, ...]
    total_seconds: float

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def failures(self) -> tuple[ServiceStep, ...]:
        return tuple(s for s in self.steps if s.status in (StartStatus.FAILED, StartStatus.UNHEALTHY))


@dataclass(frozen=True)
class ServiceHealth:
    service: str
    kind: str
    probe: str
    healthy: bool
    detail: str
    seconds: float


def start_services(
    stack: Stack,
    names: Sequence[str],
    *,
    runtime_for: RuntimeFor,
    prober: Prober = default_prober,
    clock: Clock | None = None,
    on_step: Callable[[ServiceStep], None] | None = None,
) -> StackReport:
    """Start `names` (all when empty) with their dependencies, level by level."""
    clock = clock or SystemClock()
    graph = ServiceGraph.from_stack(stack)
    began = clock.monotonic()

    def start_one(name: str) -> ServiceStep:
        return _start_one(
            stack.services[name],
            graph.level_of(name),
            runtime_for=runtime_for,
            prober=prober,
            clock=clock,
            run_began=began,
        )

    plan = graph.start_plan(names)
    steps = _run_plan(
        plan, lambda n: graph.depends_on[n], start_one, StartStatus.SKIPPED, graph, clock, began, on_step
    )
    return StackReport("start", steps, clock.monotonic() - began)


def stop_services(
    stack: Stack,
    names: Sequence[str],
    *,
    runtime_for: RuntimeFor,
    timeout: float = 60.0,
    clock: Clock | None = None,
    on_step: Callable[[ServiceStep], None] | None = None,
) -> StackReport:
    """Stop `names` (all when empty) and what depends on them, dependents first."""
    clock = clock or SystemClock()
    graph = ServiceGraph.from_stack(stack)
    began = clock.monotonic()

    def stop_one(name: str) -> ServiceStep:
        return _stop_one(
            stack.services[name],
            graph.level_of(name),
            runtime_for=runtime_for,
            timeout=timeout,
            clock=clock,
            run_began=began,
        )

    plan = graph.stop_plan(names)
    steps = _run_plan(plan, graph.dependents_of, stop_one, StopStatus.SKIPPED, graph, clock, began, on_step)
    return StackReport("stop", steps, clock.monotonic() - began)


def _run_plan(
    plan: Sequence[Sequence[str]],
    waits_on: Callable[[str], Sequence[str]],
    act: Callable[[str], ServiceStep],
    skipped: StartStatus | StopStatus,
    graph: ServiceGraph,
    clock: Clock,
    began: float,
    on_step: Callable[[ServiceStep], None] | None,
) -> tuple[ServiceStep, ...]:
    """Act on each service as soon as what it waits on is done: a slow service holds back
    only what depends on it, not the rest of its level. When something it waits on did not
    succeed, it is skipped, and so is what waits on it."""
    names = [n for group in plan for n in group]
    chosen = set(names)
    steps: dict[str, ServiceStep] = {}
    with ThreadPoolExecutor(max_workers=MAX_PARALLEL) as pool:
        running: dict[Future[ServiceStep], str] = {}

        def launch() -> None:
            busy = set(running.values())
            changed = True
            while changed:
                changed = False
                for name in names:
                    if name in steps or name in busy:
                        continue
                    blockers = [w for w in waits_on(name) if w in chosen]
                    if any(w not in steps for w in blockers):
                        continue
                    bad = [w for w in blockers if not steps[w].ok]
                    if bad:
                        held = "held back: " + ", ".join(f"{w} is {steps[w].status}" for w in bad)
                        at = clock.monotonic() - began
                        step = ServiceStep(name, graph.level_of(name), skipped, 0.0, held, at)
                        steps[name] = _record(step, on_step)
                        changed = True
                    else:
                        running[pool.submit(act, name)] = name
                        busy.add(name)

        launch()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                steps[name] = _record(future.result(), on_step)
            launch()
    return tuple(steps[n] for n in names)


def check_health(
    stack: Stack, names: Sequence[str] = (), *, prober: Prober = default_prober
) -> tuple[ServiceHealth, ...]:
    """Probe each service once, in parallel; never raises."""
    graph = ServiceGraph.from_stack(stack)
    graph.check_known(names)
    chosen = [n for level in graph.levels(names or None) for n in level]

    def probe_one(name: str) -> ServiceHealth:
        service = stack.services[name]
        probe = default_probe(service)
        timeout = min(probe_timeout(probe), 10.0) or 10.0
        outcome = prober(service, probe, timeout)
        return ServiceHealth(
            name,
            service.kind,
            describe_probe(service, probe),
            outcome.healthy,
            outcome.detail,
            outcome.seconds,
        )

    return tuple(_parallel(probe_one, chosen))


def _start_one(
    service: Service,
    level: int,
    *,
    runtime_for: RuntimeFor,
    prober: Prober,
    clock: Clock,
    run_began: float,
) -> ServiceStep:
    began = clock.monotonic()

    def step(status: StartStatus, detail: str) -> ServiceStep:
        return ServiceStep(service.name, level, status, clock.monotonic() - began, detail, began - run_began)

    try:
        runtime_for(service).start()
    except DrkitError as exc:
        return step(StartStatus.FAILED, exc.message)
    probe = default_probe(service)
    timeout = probe_timeout(probe)
    deadline = clock.monotonic() + timeout

    def healthy() -> ProbeOutcome:
        attempt = max(0.5, min(PROBE_ATTEMPT_TIMEOUT, deadline - clock.monotonic()))
        outcome = prober(service, probe, attempt)
        if not outcome.healthy:
            raise ProbeFailed(outcome.detail)
        return outcome

    try:
        outcome = wait_for(
            healthy,
            timeout=timeout,
            what=f"{service.name} to be healthy",
            interval=0.1,
            max_interval=2.0,
            clock=clock,
            retry_on=(ProbeFailed, DrkitError),
        )
    except DrkitError as exc:
        return step(StartStatus.UNHEALTHY, exc.message)
    return step(StartStatus.HEALTHY, outcome.detail)


def _stop_one(
    service: Service,
    level: int,
    *,
    runtime_for: RuntimeFor,
    timeout: float,
    clock: Clock,
    run_began: float,
) -> ServiceStep:
    began = clock.monotonic()

    def step(status: StopStatus, detail: str) -> ServiceStep:
        return ServiceStep(service.name, level, status, clock.monotonic() - began, detail, began - run_began)

    try:
        runtime = runtime_for(service)
        was_running = runtime.is_running()
        runtime.stop(timeout)
    except DrkitError as exc:
        return step(StopStatus.FAILED, exc.message)
    return step(StopStatus.STOPPED, "stopped" if was_running else "was not running")


def _parallel(
    work: Callable[[str], T], names: Sequence[str], on_done: Callable[[T], object] | None = None
) -> list[T]:
    """Run `work` for each name on threads; report each result as it lands; keep input order."""
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names))) as pool:
        futures = {pool.submit(work, name): name for name in names}
        results: dict[str, T] = {}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if on_done is not None:
                on_done(results[futures[future]])
    return [results[name] for name in names]


def _record(step: ServiceStep, on_step: Callable[[ServiceStep], None] | None) -> ServiceStep:
    if on_step is not None:
        on_step(step)
    return step
