"""Smoke checks: after a recovery, does the stack do its job? Each declared check
(`smoke:` in stack.yaml) probes one service once, in parallel; results are collected,
never raised (a failed smoke check is a critical result)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from drkit.adapters.probes import check, describe_probe
from drkit.domain.checks import CheckResult, Status
from drkit.domain.stack import SmokeCheck, Stack

ATTEMPT_TIMEOUT = 15.0


def run_smoke(stack: Stack) -> list[CheckResult]:
    if not stack.smoke:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(stack.smoke)), thread_name_prefix="smoke") as pool:
        return list(pool.map(lambda s: _one(stack, s), stack.smoke))


def _one(stack: Stack, smoke: SmokeCheck) -> CheckResult:
    service = stack.services[smoke.service]
    timeout = min(ATTEMPT_TIMEOUT, smoke.probe.timeout.total_seconds() or ATTEMPT_TIMEOUT)
    outcome = check(service, smoke.probe, timeout=timeout)
    where = describe_probe(service, smoke.probe)
    if outcome.healthy:
        return CheckResult(f"smoke: {smoke.name}", Status.OK, f"{outcome.detail} ({where})")
    return CheckResult(f"smoke: {smoke.name}", Status.FAILED, f"{outcome.detail} ({where})")
