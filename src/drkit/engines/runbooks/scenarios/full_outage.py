"""full-outage: the host came back (power, kernel, docker) and nothing runs. Check the disk,
the memory and the runtimes; start every service in dependency order, each until healthy;
scan each service's recent log for errors; check the data; smoke checks."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from drkit.domain.errors import OperationError
from drkit.engines.core.workspace import Workspace
from drkit.engines.runbooks import steps
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepResult
from drkit.engines.stack.graph import ServiceGraph

SCENARIO = "full-outage"
MIN_FREE_BYTES = 1 << 30
MIN_AVAILABLE_MEMORY = 256 << 20
LOG_TAIL_BYTES = 256 * 1024
ERROR_LINE = re.compile(r"\b(PANIC|FATAL|ERROR|CRITICAL)\b|# Bad file format|Traceback")
RUNTIME_TOOLS = {"compose": "docker", "systemd": "systemctl"}


def plan(ws: Workspace, **_: Any) -> dict[str, Any]:
    graph = ServiceGraph.from_stack(ws.stack)
    order = [n for level in graph.levels() for n in level]
    paths = sorted(
        {ws.stack.state_dir, *(s.runtime.data_dir for s in ws.stack.services.values() if s.runtime.data_dir)}
    )
    return {"services": order, "paths": paths}


def build(parameters: dict[str, Any]) -> Runbook:
    services = list(parameters["services"])
    return Runbook(
        SCENARIO,
        (
            _preflight(list(parameters["paths"])),
            steps.start_step("start", services, "every service"),
            _scan_logs(services),
            steps.integrity_step(),
            steps.smoke_step(),
        ),
        parameters,
        targets={"start_order": services, "disk_checked": parameters["paths"]},
    )


def _preflight(paths: list[str]) -> Step:
    def run(ctx: StepContext) -> StepResult:
        problems, notes = [], []
        for path in paths:
            existing = _existing(Path(path))
            usage = shutil.disk_usage(existing)
            notes.append(f"{existing}: {usage.free >> 20} MiB free")
            if usage.free < MIN_FREE_BYTES:
                problems.append(f"{existing} has only {usage.free >> 20} MiB free")
        available = _available_memory()
        notes.append(f"memory available {available >> 20} MiB")
        if available < MIN_AVAILABLE_MEMORY:
            problems.append(f"only {available >> 20} MiB of memory available")
        for kind in sorted({s.runtime.type for s in ctx.ws.stack.services.values()}):
            tool = RUNTIME_TOOLS.get(kind)
            if tool and shutil.which(tool) is None:
                problems.append(f"{tool} is not installed, and {kind} services need it")
        if problems:
            raise OperationError("; ".join(problems))
        return StepResult("; ".join(notes))

    return Step("preflight", "check disk space, memory and the runtimes", run, timeout=60)


def _scan_logs(services: list[str]) -> Step:
    def run(ctx: StepContext) -> StepResult:
        found: dict[str, list[str]] = {}
        for name in services:
            log = ctx.ws.stack.services[name].runtime.log_file
            if not log or not Path(log).is_file():
                continue
            lines = [ln for ln in _tail(Path(log)) if ERROR_LINE.search(ln)]
            if lines:
                found[name] = lines[-3:]
        if not found:
            return StepResult("no errors in the services' recent logs", {"log_errors": {}})
        detail = "; ".join(
            f"{n}: {len(v)} error line(s), last: {v[-1].strip()[:160]}" for n, v in found.items()
        )
        return StepResult(detail, {"log_errors": found})

    return Step("scan-logs", "scan each service's recent log for errors", run, critical=False, timeout=120)


def _tail(path: Path) -> list[str]:
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - LOG_TAIL_BYTES))
        return fh.read().decode(errors="replace").splitlines()


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0
