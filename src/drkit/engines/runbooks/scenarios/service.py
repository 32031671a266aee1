"""service NAME: one service is failing (the source's scenario 4). Probe it; restart it
through its runtime; if it is still unhealthy and drkit backs up its kind, restore its
newest backup (MeiliSearch: or rebuild the index from PostgreSQL); then probe it with its
real probe (strict Hasura health, a canary sign-in for auth) and run its smoke checks."""

from __future__ import annotations

from typing import Any

from drkit.domain.errors import DrkitError, OperationError, UsageError
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.registry import engine_for, has_engine
from drkit.engines.core.types import RestoreOptions
from drkit.engines.core.workspace import Workspace
from drkit.engines.runbooks import steps
from drkit.engines.runbooks.model import Runbook, Step, StepContext, StepResult
from drkit.engines.stack.smoke import run_smoke
from drkit.runtimes.factory import runtime_for

SCENARIO = "service"


def plan(
    ws: Workspace, *, service: str | None = None, force_restore: bool = False, **_: Any
) -> dict[str, Any]:
    if not service:
        raise UsageError("name the failing service: drkit recover service NAME")
    kind = ws.stack.service(service).kind
    if kind == "postgres":
        raise UsageError("for PostgreSQL use db-corruption (or data-loss --target-time T)")
    restorable = has_engine(kind)
    if force_restore and not restorable:
        raise UsageError(f"drkit keeps no backup of {service} ({kind}) to restore")
    return {"service": service, "kind": kind, "restorable": restorable, "force_restore": force_restore}


def build(parameters: dict[str, Any]) -> Runbook:
    name = str(parameters["service"])
    forced = bool(parameters.get("force_restore"))
    chosen = [_probe(name), _restart(name)]
    if parameters["restorable"]:
        chosen.append(_restore(name, forced=forced))
    chosen += [_verify(name)]
    when = "always (--restore)" if forced else "if still unhealthy after the restart"
    when = when if parameters["restorable"] else "no backups of its kind"
    return Runbook(
        f"{SCENARIO}-{name}",
        tuple(chosen),
        parameters,
        targets={"service": name, "restore_newest_backup": when},
    )


def _probe(name: str) -> Step:
    def run(ctx: StepContext) -> StepResult:
        healthy, detail = steps.probe_once(ctx, name)
        return StepResult(f"{'healthy' if healthy else 'unhealthy'}: {detail}", {"healthy_before": healthy})

    return Step("probe", f"probe {name} as it is", run, service=name, critical=False, timeout=60)


def _restart(name: str) -> Step:
    def run(ctx: StepContext) -> StepResult:
        service = ctx.ws.stack.services[name]
        runtime = runtime_for(service, ctx.ws.stack.state_dir)
        runtime.stop()
        try:
            steps.start_now(ctx, [name])
        except DrkitError as exc:
            return StepResult(f"restarted, still unhealthy: {exc.message}", {"healthy_after_restart": False})
        return StepResult("restarted and healthy", {"healthy_after_restart": True})

    def running(ctx: StepContext) -> str | None:
        service = ctx.ws.stack.services[name]
        return None if runtime_for(service, ctx.ws.stack.state_dir).is_running() else f"{name} is not running"

    return Step(
        "restart", f"restart {name} through its runtime", run, destructive=True, service=name, after=running
    )


def _restore(name: str, *, forced: bool = False) -> Step:
    def run(ctx: StepContext) -> StepResult:
        if ctx.facts.get("healthy_after_restart") and not ctx.parameters.get("force_restore"):
            return StepResult("not needed: healthy after the restart")
        service = ctx.ws.stack.services[name]
        result = engine_for(service).restore(ctx.ws, service, RestoreOptions(yes=True))
        failed = [c for c in result.checks if c.failed_critically]
        if failed:
            raise OperationError("; ".join(f"{c.name}: {c.detail}" for c in failed))
        taken = next(
            (
                m.finished_at
                for m in list_backups(ctx.ws.repo, ctx.ws.stack.name, name).complete
                if m.backup_id == result.backup_id
            ),
            None,
        )
        facts = {
            "restored_backup": result.backup_id,
            "restored_backup_at": taken.isoformat() if taken else None,
        }
        return StepResult(f"restored {result.backup_id}: {result.detail}", facts)

    def healthy(ctx: StepContext) -> str | None:
        ok, detail = steps.probe_once(ctx, name)
        return None if ok else detail

    return Step(
        "restore",
        f"restore {name}'s newest backup" + (" (--restore)" if forced else " (if still unhealthy)"),
        run,
        destructive=True,
        service=name,
        after=healthy,
        timeout=6 * 3600,
    )


def _verify(name: str) -> Step:
    def run(ctx: StepContext) -> StepResult:
        healthy, detail = steps.probe_once(ctx, name)
        if not healthy:
            raise OperationError(f"{name} is unhealthy: {detail}")
        results = run_smoke(ctx.ws.stack)
        bad = [r for r in results if r.failed_critically]
        if bad:
            raise OperationError("; ".join(f"{r.name}: {r.detail}" for r in bad))
        return StepResult(f"healthy ({detail}); {len(results)} smoke check(s) passed")

    return Step(
        "verify", f"probe {name} with its real probe and run the smoke checks", run, service=name, timeout=300
    )
