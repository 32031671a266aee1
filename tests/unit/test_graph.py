"""The service graph (levels, cycles, unknown services) and the start/stop engine over it,
with fake runtimes and probes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from drkit.adapters.probes import ProbeOutcome, default_probe, describe_probe
from drkit.domain.errors import ConfigError, OperationError, RolledBackError, UsageError
from drkit.domain.stack import HealthProbe, RepositorySpec, RuntimeSpec, Service, Stack
from drkit.engines.stack.graph import ServiceGraph
from drkit.engines.stack.paused import dependents_paused
from drkit.engines.stack.start import check_health, start_services, stop_services

NSELF = {
    "postgres": [],
    "redis": [],
    "minio": [],
    "hasura": ["postgres"],
    "auth": ["postgres", "hasura"],
    "functions": ["postgres", "hasura"],
    "meilisearch": ["postgres"],
    "monitoring": [],
}


def test_levels_put_each_service_after_its_deepest_dependency() -> None:
    graph = ServiceGraph.from_pairs(NSELF)
    assert graph.levels() == (
        ("postgres", "redis", "minio", "monitoring"),
        ("hasura", "meilisearch"),
        ("auth", "functions"),
    )


def test_start_plan_pulls_in_dependencies_only() -> None:
    graph = ServiceGraph.from_pairs(NSELF)
    assert graph.start_plan(["auth"]) == (("postgres",), ("hasura",), ("auth",))
    assert graph.start_plan(["redis"]) == (("redis",),)


def test_stop_plan_is_reversed_and_pulls_in_dependents() -> None:
    graph = ServiceGraph.from_pairs(NSELF)
    assert graph.stop_plan(["hasura"]) == (("auth", "functions"), ("hasura",))
    full = graph.stop_plan()
    assert full[0] == ("auth", "functions")
    assert full[-1] == ("postgres", "redis", "minio", "monitoring")


def test_cycle_is_named() -> None:
    with pytest.raises(ConfigError, match=r"dependency cycle: (a -> b -> c -> a|b -> c -> a -> b)"):
        ServiceGraph.from_pairs({"a": ["b"], "b": ["c"], "c": ["a"], "d": []})


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(ConfigError, match="dependency cycle: a -> a"):
        ServiceGraph.from_pairs({"a": ["a"]})


def test_unknown_dependency_is_named() -> None:
    with pytest.raises(ConfigError, match="hasura depends on unknown service 'postgress'"):
        ServiceGraph.from_pairs({"postgres": [], "hasura": ["postgress"]})


def test_unknown_service_asked_for_is_a_usage_error() -> None:
    graph = ServiceGraph.from_pairs(NSELF)
    with pytest.raises(UsageError, match="unknown service 'hasra'"):
        graph.start_plan(["hasra"])


# --- the start/stop engine with fakes -------------------------------------------------


class FakeRuntime:
    def __init__(self, name: str, world: World) -> None:
        self.name = name
        self.world = world

    @property
    def description(self) -> str:
        return f"fake {self.name}"

    def start(self) -> None:
        with self.world.lock:
            self.world.events.append(("start", self.name))
            if self.name in self.world.refuse:
                raise OperationError(f"{self.name} refused to start")
            self.world.running.add(self.name)

    def stop(self, timeout: float = 60.0) -> None:
        with self.world.lock:
            self.world.events.append(("stop", self.name))
            if self.name in self.world.stuck:
                raise OperationError(f"{self.name} did not exit")
            self.world.running.discard(self.name)

    def is_running(self) -> bool:
        return self.name in self.world.running

    def pause(self) -> None:
        pass

    def unpause(self) -> None:
        pass


class World:
    def __init__(
        self,
        never_healthy: set[str] = frozenset(),
        refuse: set[str] = frozenset(),
        stuck: set[str] = frozenset(),
    ):
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.running: set[str] = set()
        self.never_healthy = set(never_healthy)
        self.refuse = set(refuse)
        self.stuck = set(stuck)

    def runtime(self, service: Service) -> FakeRuntime:
        return FakeRuntime(service.name, self)

    def probe(self, service: Service, probe: HealthProbe, timeout: float) -> ProbeOutcome:
        if service.name in self.never_healthy:
            return ProbeOutcome(False, "HTTP 503 (expected 200)", 0.0)
        if service.name not in self.running:
            return ProbeOutcome(False, "connection refused", 0.0)
        return ProbeOutcome(True, "HTTP 200", 0.0)


def make_stack(deps: dict[str, list[str]], timeout: float = 0.3) -> Stack:
    services = {
        name: Service(
            name=name,
            kind="http",
            runtime=RuntimeSpec(type="local", command=("true",)),
            url="http://127.0.0.1:1",
            depends_on=tuple(d),
            health=HealthProbe("http", timeout=timedelta(seconds=timeout)),
        )
        for name, d in deps.items()
    }
    repo = RepositorySpec(name="local", type="fs", path="/tmp/none")
    return Stack(name="t", services=services, repositories={"local": repo}, primary_repository="local")


def test_start_follows_levels_and_reports_each_service() -> None:
    world = World()
    report = start_services(make_stack(NSELF), [], runtime_for=world.runtime, prober=world.probe)
    assert report.ok
    started = [name for action, name in world.events if action == "start"]
    position = {name: i for i, name in enumerate(started)}
    for name, deps in NSELF.items():
        for dep in deps:
            assert position[dep] < position[name], f"{dep} must start before {name}"
    assert {s.service: s.status for s in report.steps} == dict.fromkeys(NSELF, "healthy")
    assert all(s.seconds >= 0 for s in report.steps) and report.total_seconds >= 0


def test_an_unhealthy_service_holds_back_its_dependents_only() -> None:
    world = World(never_healthy={"hasura"})
    report = start_services(make_stack(NSELF), [], runtime_for=world.runtime, prober=world.probe)
    status = {s.service: s.status for s in report.steps}
    assert status["hasura"] == "unhealthy"
    assert status["auth"] == status["functions"] == "skipped"
    assert status["meilisearch"] == "healthy"  # does not need hasura
    assert not report.ok
    assert [f.service for f in report.failures] == ["hasura"]
    hasura = next(s for s in report.steps if s.service == "hasura")
    assert "HTTP 503" in hasura.detail and hasura.seconds >= 0.3
    assert ("start", "auth") not in world.events
    assert "postgres" in world.running  # what is up stays up


def test_a_service_that_refuses_to_start_is_failed_with_the_reason() -> None:
    world = World(refuse={"postgres"})
    report = start_services(make_stack(NSELF), ["auth"], runtime_for=world.runtime, prober=world.probe)
    status = {s.service: (s.status, s.detail) for s in report.steps}
    assert status["postgres"] == ("failed", "postgres refused to start")
    assert status["hasura"][0] == status["auth"][0] == "skipped"
    assert "postgres is failed" in status["hasura"][1]


def test_a_slow_service_holds_back_only_what_depends_on_it() -> None:
    # minio is slow (SeaweedFS takes 15-20 s to answer here); hasura needs only postgres and
    # must not wait for minio. minio turns healthy only once hasura has started: with
    # level-by-level starting, hasura would wait for minio, and minio would time out.
    world = World()
    real_probe = world.probe

    def probe(service: Service, health: HealthProbe, timeout: float) -> ProbeOutcome:
        if service.name == "minio" and ("start", "hasura") not in world.events:
            return ProbeOutcome(False, "not yet", 0.0)
        return real_probe(service, health, timeout)

    stack = make_stack({"postgres": [], "minio": [], "hasura": ["postgres"]}, timeout=5.0)
    report = start_services(stack, [], runtime_for=world.runtime, prober=probe)
    assert {s.service: s.status for s in report.steps} == dict.fromkeys(
        ["postgres", "minio", "hasura"], "healthy"
    )
    hasura = next(s for s in report.steps if s.service == "hasura")
    minio = next(s for s in report.steps if s.service == "minio")
    assert hasura.started_after < minio.started_after + minio.seconds


def test_stop_goes_dependents_first() -> None:
    world = World()
    world.running = set(NSELF)
    report = stop_services(make_stack(NSELF), ["postgres"], runtime_for=world.runtime)
    stopped = [name for action, name in world.events if action == "stop"]
    assert set(stopped) == {"postgres", "hasura", "auth", "functions", "meilisearch"}
    assert stopped[-1] == "postgres"
    assert stopped.index("hasura") > max(stopped.index("auth"), stopped.index("functions"))
    assert world.running == {"redis", "minio", "monitoring"}
    assert report.ok


def test_a_service_that_does_not_stop_keeps_what_it_needs_running() -> None:
    world = World(stuck={"hasura"})
    world.running = set(NSELF)
    report = stop_services(make_stack(NSELF), [], runtime_for=world.runtime)
    status = {s.service: (s.status, s.detail) for s in report.steps}
    assert status["hasura"] == ("failed", "hasura did not exit")
    assert status["postgres"][0] == "skipped" and "hasura is failed" in status["postgres"][1]
    assert status["auth"][0] == status["meilisearch"][0] == status["redis"][0] == "stopped"
    assert "postgres" in world.running
    assert not report.ok


def test_health_reports_every_service_without_raising() -> None:
    world = World(never_healthy={"redis"})
    world.running = set(NSELF)
    results = {r.service: r for r in check_health(make_stack(NSELF), prober=world.probe)}
    assert set(results) == set(NSELF)
    assert not results["redis"].healthy and "503" in results["redis"].detail
    assert results["postgres"].healthy


@pytest.mark.parametrize(
    ("kind", "address", "probe_type", "target"),
    [
        ("postgres", {"dsn": "host=127.0.0.1 port=5432 dbname=nchat"}, "sql", ""),
        ("redis", {"url": "redis://127.0.0.1:6379/0"}, "redis", ""),
        ("hasura", {"url": "http://127.0.0.1:8080"}, "hasura", ""),
        ("s3", {"url": "http://127.0.0.1:9000/"}, "s3", ""),  # any S3 server: a signed ListBuckets
        ("meilisearch", {"url": "http://127.0.0.1:7700"}, "http", "http://127.0.0.1:7700/health"),
        ("monitoring", {"url": "http://127.0.0.1:9090"}, "http", "http://127.0.0.1:9090/-/healthy"),
        ("auth", {"url": "http://127.0.0.1:4000"}, "tcp", ""),  # a sign-in needs a canary
        ("functions", {}, "none", ""),
    ],
)
def test_a_service_without_health_gets_a_probe_by_kind(
    kind: str, address: dict[str, str], probe_type: str, target: str
) -> None:
    service = Service(name="s", kind=kind, runtime=RuntimeSpec(type="compose", container="c"), **address)
    probe = default_probe(service)
    assert (probe.type, probe.target) == (probe_type, target)


def test_probe_descriptions_name_what_is_asked() -> None:
    hasura = Service(name="h", kind="hasura", runtime=RuntimeSpec(type="local"), url="http://127.0.0.1:8080")
    assert describe_probe(hasura, default_probe(hasura)) == "GET http://127.0.0.1:8080/healthz?strict=true"
    auth = Service(name="a", kind="auth", runtime=RuntimeSpec(type="local"), url="http://127.0.0.1:4000")
    canary = HealthProbe("auth", "http://canary%40example.com@127.0.0.1:4000")
    assert describe_probe(auth, canary) == ("canary sign-in POST http://127.0.0.1:4000/signin/email-password")


# --- dependents paused around an in-place restore -------------------------------------


def test_running_dependents_are_stopped_first_and_started_again_in_order() -> None:
    world = World()
    world.running = set(NSELF) - {"functions"}  # functions was not running: left alone
    stack = make_stack(NSELF)
    with dependents_paused(stack, ["postgres"], runtime_for=world.runtime, prober=world.probe) as paused:
        assert paused.services == ("hasura", "auth", "meilisearch")
        assert world.running == {"postgres", "redis", "minio", "monitoring"}
        world.events.append(("restore", "postgres"))
    stops = [n for a, n in world.events[: world.events.index(("restore", "postgres"))] if a == "stop"]
    assert stops.index("auth") < stops.index("hasura")  # dependents before what they need
    starts = [n for a, n in world.events[world.events.index(("restore", "postgres")) :] if a == "start"]
    assert starts.index("hasura") < starts.index("auth")
    assert "functions" not in starts and world.running == set(NSELF) - {"functions"}
    assert paused.started is not None and paused.started.ok


def test_a_failed_restore_that_leaves_the_service_down_leaves_the_dependents_stopped_and_says_so() -> None:
    world = World()
    world.running = set(NSELF)
    with (
        pytest.raises(OperationError) as failed,
        dependents_paused(make_stack(NSELF), ["hasura"], runtime_for=world.runtime, prober=world.probe),
    ):
        world.running.discard("hasura")
        raise OperationError("the backup's part 3 is damaged")
    assert world.running == set(NSELF) - {"auth", "functions", "hasura"}
    assert failed.value.hint is not None and "auth, functions (which depend on hasura) stay stopped" in (
        failed.value.hint
    )


@pytest.mark.parametrize("error", [OperationError("refused: part 3 is missing"), RolledBackError("put back")])
def test_a_failed_restore_that_left_the_service_running_starts_the_dependents_again(
    error: OperationError,
) -> None:
    """Refused before it touched the service, or put its old data back and started it: the
    dependents come back too, each until healthy, and the error says so."""
    world = World()
    world.running = set(NSELF)
    with (
        pytest.raises(OperationError) as failed,
        dependents_paused(make_stack(NSELF), ["hasura"], runtime_for=world.runtime, prober=world.probe),
    ):
        assert "auth" not in world.running
        raise error
    assert world.running == set(NSELF)
    assert failed.value.hint is not None and "were started again, healthy" in failed.value.hint


def test_a_dependent_that_does_not_stop_means_nothing_is_restored() -> None:
    world = World(stuck={"auth"})
    world.running = set(NSELF)
    restored = []
    with (
        pytest.raises(OperationError, match="could not stop auth"),
        dependents_paused(make_stack(NSELF), ["postgres"], runtime_for=world.runtime, prober=world.probe),
    ):
        restored.append(True)
    assert not restored


def test_a_stack_restore_pauses_only_what_it_does_not_restore_and_resumes_only_when_sound() -> None:
    world = World()
    world.running = set(NSELF)
    restored = ["postgres", "redis", "minio", "hasura", "meilisearch"]
    with dependents_paused(
        make_stack(NSELF), restored, runtime_for=world.runtime, prober=world.probe
    ) as paused:
        assert paused.services == ("auth", "functions")  # nothing of theirs to restore, they use it
        paused.resume = False  # a service failed to restore
    assert world.running == set(NSELF) - {"auth", "functions"} and paused.started is None
