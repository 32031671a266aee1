"""`drkit start|stop|health|integrity|init`: the stack in dependency order, and its data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from drkit.cli.context import options
from drkit.cli.render import console, duration, emit_json, err_console, status_text, table
from drkit.domain.errors import UsageError

if TYPE_CHECKING:
    from drkit.domain.checks import IntegrityCheck
    from drkit.domain.stack import Stack
    from drkit.engines.stack.integrity import IntegrityResult
    from drkit.engines.stack.start import ServiceStep, StackReport

STEP_STYLE = {"healthy": "green", "stopped": "green", "skipped": "yellow"}


def start_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Services to start, with what they need."),
) -> None:
    """Start services in dependency order and wait until each one is healthy.

    Services of one level start together; each waits for its health probe up to the probe's
    timeout (default 60s). Prints each service's time to healthy and the total. A service
    that never gets healthy fails the command (exit 1); what depends on it is not started.

    Example: drkit start hasura    (starts postgres first, then hasura)
    """
    from drkit.engines.stack.graph import ServiceGraph
    from drkit.engines.stack.start import start_services
    from drkit.runtimes.factory import runtime_for

    opts = options(ctx)
    stack = opts.stack()
    if opts.dry_run:
        _print_plan("start", ServiceGraph.from_stack(stack).start_plan(services or []), opts.json)
        return
    report = start_services(
        stack,
        services or [],
        runtime_for=lambda s: runtime_for(s, stack.state_dir),
        on_step=None if opts.json else _print_step,
    )
    _finish(report, opts.json)


def stop_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Services to stop, with what needs them."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds each service gets to stop."),
) -> None:
    """Stop services in reverse dependency order (what depends on a service stops first).

    Example: drkit stop postgres    (stops hasura, auth, functions, ... then postgres)
    """
    from drkit.engines.stack.graph import ServiceGraph
    from drkit.engines.stack.start import stop_services
    from drkit.runtimes.factory import runtime_for

    opts = options(ctx)
    stack = opts.stack()
    if opts.dry_run:
        _print_plan("stop", ServiceGraph.from_stack(stack).stop_plan(services or []), opts.json)
        return
    report = stop_services(
        stack,
        services or [],
        runtime_for=lambda s: runtime_for(s, stack.state_dir),
        timeout=timeout,
        on_step=None if opts.json else _print_step,
    )
    _finish(report, opts.json)


def health_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Services to probe (default: all)."),
) -> None:
    """Probe every service once with its health probe; exit 3 when one is unhealthy.

    Example: drkit health --output json
    """
    from drkit.engines.stack.start import check_health

    opts = options(ctx)
    results = check_health(opts.stack(), services or [])
    if opts.json:
        emit_json([{"status": "ok" if r.healthy else "failed", **_fields(r)} for r in results])
    else:
        rows = [
            (
                r.service,
                r.kind,
                status_text("ok" if r.healthy else "failed"),
                duration(r.seconds),
                r.probe,
                r.detail,
            )
            for r in results
        ]
        table("health", ["service", "kind", "status", "time", "probe", "detail"], rows)
    if not all(r.healthy for r in results):
        raise typer.Exit(3)


def smoke_cmd(ctx: typer.Context) -> None:
    """Run the smoke checks of stack.yaml (`smoke:`): does the stack do its job? Exit 3
    when one fails.

    Example: drkit smoke --output json
    """
    from drkit.engines.stack.smoke import run_smoke

    opts = options(ctx)
    results = run_smoke(opts.stack())
    if opts.json:
        emit_json({"ok": not any(r.failed_critically for r in results), "results": results})
    elif not results:
        console.print("no smoke checks in stack.yaml (smoke:)")
    else:
        table(
            "smoke",
            ["check", "status", "detail"],
            [(r.name, status_text(r.status.value), r.detail) for r in results],
        )
    if any(r.failed_critically for r in results):
        raise typer.Exit(3)


def integrity_cmd(
    ctx: typer.Context,
    checks: list[str] = typer.Argument(None, help="Checks to run, by name (default: all)."),
) -> None:
    """Run the data checks of stack.yaml; exit 3 when a critical one fails.

    Every check runs and reports, even after a failure: its value, what was expected and
    how many rows (or objects) offend.

    Example: drkit integrity --output json
    """
    from drkit.engines.stack.integrity import PostgresBackend, run_integrity

    opts = options(ctx)
    stack = opts.stack()
    chosen = _choose_checks(stack, checks or [])
    report = run_integrity(stack, PostgresBackend(), checks=chosen)
    if opts.json:
        emit_json(
            {
                "ok": not report.failed_critically,
                "seconds": report.seconds,
                "results": [{**_fields(r), "failed_critically": r.failed_critically} for r in report.results],
            }
        )
    elif not report.results:
        err_console.print("no checks: stack.yaml has no `checks:` (see docs/integrity.md)")
    else:
        _print_integrity(report.results, report.seconds)
    if report.failed_critically:
        raise typer.Exit(3)


def init_cmd(
    ctx: typer.Context,
    preset: str = typer.Option(..., "--preset", help="Which stack: nself."),
    project_dir: Path = typer.Option(Path("."), "--project-dir", help="The nself project."),
    out: Path = typer.Option(None, "--out", help="Where to write (default: PROJECT/stack.yaml)."),
    compose_service: bool = typer.Option(
        False,
        "--compose-service",
        help="Also add drkit to the project's docker-compose.override.yml (and a Prometheus scrape job).",
    ),
    image: str = typer.Option(
        None, "--image", help="The drkit image for --compose-service (default drkit:pgN)."
    ),
) -> None:
    """Write a stack.yaml for an nself project from its .env files. Secrets are references,
    never values: dotenv:FILE#KEY to the .env file whose value wins, env:NAME for one the files
    lack (export it; the file's header names each secret and where it was found).

    Refuses to replace an existing file unless --yes. With --dry-run, prints it instead.
    --compose-service adds drkit as services of the compose project (docs/nself.md); with a
    stack.yaml already there (and no --yes) it keeps that one and writes only the override.

    Example: drkit init --preset nself --project-dir ~/nchat --compose-service
    """
    from drkit.config.nself_preset import nself_config, write_config

    if preset != "nself":
        raise UsageError(f"unknown preset {preset!r}: the only preset is nself")
    opts = options(ctx)
    target = out or project_dir / "stack.yaml"
    config = nself_config(project_dir)
    if opts.dry_run:
        if opts.json:
            emit_json({"dry_run": True, "path": str(target), **_fields(config)})
        else:
            console.print(config.text, markup=False, highlight=False, end="")
            if compose_service:
                _compose_service(project_dir, target, config.text, image, dry_run=True)
        return
    if compose_service and target.exists() and not opts.yes:  # the override for the stack.yaml there
        written = _compose_service(
            project_dir, target, target.read_text(), image, dry_run=False, quiet=opts.json
        )
        if opts.json:
            emit_json({"path": str(target), "kept": True, "compose_files": written})
        return
    write_config(config, target, overwrite=opts.yes)
    if opts.json:
        fields = {k: v for k, v in _fields(config).items() if k != "text"}
        written = (
            _compose_service(project_dir, target, config.text, image, dry_run=False, quiet=True)
            if compose_service
            else []
        )
        emit_json({"path": str(target), **fields, "compose_files": written})
        return
    console.print(f"wrote {target} for nself project {config.stack!r}", markup=False)
    console.print(f"  services: {', '.join(config.services)}", markup=False)
    console.print(f"  checks:   {config.checks}; read {', '.join(config.sources)}", markup=False)
    for line in config.findings:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if compose_service:
        _compose_service(project_dir, target, config.text, image, dry_run=False)
    console.print(f"next: drkit --config {target} health")


def _compose_service(
    project_dir: Path,
    stack_file: Path,
    stack_text: str,
    image: str | None,
    *,
    dry_run: bool,
    quiet: bool = False,
) -> list[str]:
    """The override (and scrape job) for drkit as compose services: printed or written."""
    import yaml

    from drkit.config.nself_compose import compose_service, write_compose_service
    from drkit.config.nself_preset import read_project_env
    from drkit.domain.errors import DrkitError
    from drkit.domain.stack import RuntimeSpec
    from drkit.runtimes.compose import ComposeRuntime

    def mountpoint(volume: str) -> str | None:
        try:
            return ComposeRuntime(RuntimeSpec(type="compose", container=volume)).volume_path(volume)
        except DrkitError:
            return None

    env = read_project_env(project_dir).values
    doc = yaml.safe_load(stack_text)
    generated = compose_service(doc, project_dir, stack_file, env, mountpoint, image=image)
    if dry_run:
        console.print(f"# {generated.override_path}", markup=False)
        console.print(generated.override_text, markup=False, highlight=False, end="")
        return []
    written = write_compose_service(generated)
    if not quiet:
        for line in generated.findings:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        for path in written:
            console.print(f"wrote {path}", markup=False)
    return written


def _choose_checks(stack: Stack, names: list[str]) -> list[IntegrityCheck] | None:
    if not names:
        return None
    known = {c.name: c for c in stack.checks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown check(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in names]


def _print_plan(action: str, plan: tuple[tuple[str, ...], ...], as_json: bool) -> None:
    if as_json:
        emit_json({"action": action, "levels": [list(level) for level in plan]})
        return
    for i, level in enumerate(plan):
        console.print(f"would {action} (step {i + 1}): {', '.join(level)}")


def _print_step(step: ServiceStep) -> None:
    style = STEP_STYLE.get(step.status, "red")
    console.print(
        f"[{style}]{step.status:<9}[/{style}] {step.service:<16} {duration(step.seconds):>7}  "
        f"at +{duration(step.started_after)}  {step.detail}",
        soft_wrap=True,
    )


def _finish(report: StackReport, as_json: bool) -> None:
    if as_json:
        emit_json({**_fields(report), "ok": report.ok})
    else:
        console.print(f"total {duration(report.total_seconds)}")
    for failure in report.failures:
        err_console.print(
            f"[red]error:[/red] {failure.service} {failure.status}: {failure.detail}",
            soft_wrap=True,
        )
    if not report.ok:
        raise typer.Exit(1)


def _print_integrity(results: tuple[IntegrityResult, ...], seconds: float) -> None:
    rows = [
        (r.name, status_text(r.status.value), _num(r.value), r.expected, _num(r.offending), r.detail)
        for r in results
    ]
    table("integrity", ["check", "status", "value", "expected", "offending", "detail"], rows)
    counts = {s: sum(1 for r in results if r.status.value == s) for s in ("ok", "warning", "failed")}
    console.print(
        f"{len(results)} checks in {duration(seconds)}: {counts['ok']} ok, "
        f"{counts['warning']} warning, {counts['failed']} failed"
    )


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _fields(obj: object) -> dict[str, object]:
    from drkit.cli.render import to_jsonable

    data = to_jsonable(obj)
    if not isinstance(data, dict):
        raise TypeError(f"{type(obj).__name__} does not render as a JSON object")
    return data


def register(app: typer.Typer) -> None:
    app.command("start")(start_cmd)
    app.command("stop")(stop_cmd)
    app.command("health")(health_cmd)
    app.command("integrity")(integrity_cmd)
    app.command("smoke")(smoke_cmd)
    app.command("init")(init_cmd)
