"""The service graph from `depends_on`: start levels, stop order, what a selection pulls in.

Level 0 holds the services that depend on nothing; a service sits one level above its
deepest dependency. Services of one level can start together; stopping walks the levels
backwards. A cycle or an unknown service is an error that names it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from drkit.domain.errors import ConfigError, UsageError
from drkit.domain.stack import Stack


@dataclass(frozen=True)
class ServiceGraph:
    """Services (in configuration order) and what each depends on; validated when built."""

    depends_on: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        for name, deps in self.depends_on.items():
            for dep in deps:
                if dep not in self.depends_on:
                    raise ConfigError(f"service {name} depends on unknown service {dep!r}")
        cycle = _find_cycle(self.depends_on)
        if cycle:
            raise ConfigError("dependency cycle: " + " -> ".join(cycle))

    @classmethod
    def from_stack(cls, stack: Stack) -> ServiceGraph:
        return cls({name: tuple(s.depends_on) for name, s in stack.services.items()})

    @classmethod
    def from_pairs(cls, deps: Mapping[str, Sequence[str]]) -> ServiceGraph:
        return cls({name: tuple(d) for name, d in deps.items()})

    def level_of(self, name: str, _memo: dict[str, int] | None = None) -> int:
        memo = {} if _memo is None else _memo
        if name not in memo:
            deps = self.depends_on[name]
            memo[name] = 1 + max(self.level_of(d, memo) for d in deps) if deps else 0
        return memo[name]

    def levels(self, only: Iterable[str] | None = None) -> tuple[tuple[str, ...], ...]:
        """Start order: level 0 first; within a level, configuration order."""
        chosen = set(self.depends_on if only is None else only)
        memo: dict[str, int] = {}
        by_level: dict[int, list[str]] = {}
        for name in self.depends_on:
            if name in chosen:
                by_level.setdefault(self.level_of(name, memo), []).append(name)
        return tuple(tuple(by_level[level]) for level in sorted(by_level))

    def check_known(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self.depends_on:
                known = ", ".join(self.depends_on)
                near = difflib.get_close_matches(name, list(self.depends_on), n=1)
                guess = f": did you mean {near[0]!r}?" if near else ""
                raise UsageError(f"unknown service {name!r}{guess} (known: {known})")

    def with_dependencies(self, names: Iterable[str]) -> frozenset[str]:
        """The named services and everything they need, transitively."""
        names = list(names)
        self.check_known(names)
        return _closure(names, lambda n: self.depends_on[n])

    def with_dependents(self, names: Iterable[str]) -> frozenset[str]:
        """The named services and everything that needs them, transitively."""
        names = list(names)
        self.check_known(names)
        return _closure(names, self.dependents_of)

    def dependents_of(self, name: str) -> tuple[str, ...]:
        return tuple(n for n, deps in self.depends_on.items() if name in deps)

    def start_plan(self, names: Sequence[str] = ()) -> tuple[tuple[str, ...], ...]:
        """Levels to start: all services, or the named ones with their dependencies."""
        return self.levels(self.with_dependencies(names) if names else None)

    def stop_plan(self, names: Sequence[str] = ()) -> tuple[tuple[str, ...], ...]:
        """Levels to stop, dependents first: all, or the named ones with their dependents."""
        return tuple(reversed(self.levels(self.with_dependents(names) if names else None)))


def _closure(start: Iterable[str], step: Callable[[str], Iterable[str]]) -> frozenset[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(step(name))
    return frozenset(seen)


def _find_cycle(depends_on: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """One dependency cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in depends_on[name]:
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in depends_on:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None
