"""`drkit status`, `drkit metrics` and `drkit notify test|digest`."""

from __future__ import annotations

from typing import Any

import typer

from drkit.cli.context import Options, options
from drkit.cli.render import console, duration, emit_json, err_console, table
from drkit.cli.times import operator_time
from drkit.domain.errors import UsageError
from drkit.domain.stack import Severity, Stack
from drkit.engines.ops.status import ServiceStatus, StatusReport

notify_app = typer.Typer(help="Send notifications to the targets in stack.yaml (apprise URLs).")


def status_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Services to show (default: every one)."),
    notify: bool = typer.Option(False, "--notify", help="Send what is red to the notification targets."),
) -> None:
    """Per service: newest backup, newest recoverable point against the RPO, WAL capture, last
    verify and drill; exit 3 when a recoverable point is older than its RPO or archiving fails.

    Example: drkit status;  drkit status --notify -o json
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.status import build_status, copies_probe

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    ws.stack.require_services(services or [])
    report = build_status(ws, services=services or None, copies=copies_probe(ws))
    if opts.json:
        data = {"stack": report.stack, "at": report.at, "red": bool(report.red), "services": _rows(report)}
        if report.red:  # who to call, from stack.yaml
            data["escalation"] = ws.stack.escalation_record() or None
        emit_json(data)
    else:
        _print(report)
        if report.red:
            _print_escalation(ws.stack)
    if notify:
        _notify_red(opts.stack(), report, quiet=opts.json)
    if report.red:
        raise typer.Exit(3)


def _rows(report: StatusReport) -> list[dict[str, Any]]:
    out = []
    for s in report.services:
        last = s.last_backup
        out.append(
            {
                "service": s.service,
                "kind": s.kind,
                "red": s.red,
                "problems": list(s.problems),
                "last_backup": None
                if last is None
                else {"backup_id": last.backup_id, "kind": last.kind, "finished_at": last.finished_at},
                "last_backup_age_seconds": (report.at - last.finished_at).total_seconds() if last else None,
                "recoverable_at": s.recoverable_at,
                "recoverable_source": s.recoverable_source,
                "recoverable_age_seconds": s.recoverable_age_seconds,
                "rpo_target_seconds": s.rpo_target_seconds,
                "rto_target_seconds": s.rto_target_seconds,
                "rpo_applies": s.rpo_applies,
                "rpo_from": s.rpo_from,
                "wal": s.archive,
                "verify": s.verify,
                "drill": s.drill,
                "copies": dict(s.copies) if s.copies is not None else None,
            }
        )
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return duration(seconds)


def _row(s: ServiceStatus, report: StatusReport) -> tuple[str, ...]:
    last = s.last_backup
    backup = (
        f"{last.backup_id} ({_age((report.at - last.finished_at).total_seconds())} ago)" if last else "none"
    )
    rpo = f"{_age(s.recoverable_age_seconds)} / {_age(s.rpo_target_seconds)}" if s.rpo_applies else "n/a"
    if s.rpo_applies and s.rpo_from:
        rpo += f" ({s.rpo_from}'s)"
    wal = "-"
    if s.archive is not None:
        a = s.archive
        state = (
            "[red]FAILING[/red]"
            if a.failing
            else ("caught up" if a.caught_up else f"lag {_age(a.lag_seconds)}")
        )
        wal = f"{a.mode}: {state}"
    verify = "-" if s.verify is None else ("[green]ok[/green]" if s.verify.ok else "[red]failed[/red]")
    drill = "-"
    if s.drill is not None:
        d = s.drill
        drill = f"{d.verdict}" + (f" RTO {duration(d.rto_seconds)}" if d.rto_seconds is not None else "")
        drill += f" RPO {duration(d.rpo_seconds)}" if d.rpo_seconds is not None else ""
    verdict = "[red]RED[/red]" if s.red else "[green]ok[/green]"
    return (s.service, verdict, backup, rpo, wal, verify, drill)


def _print(report: StatusReport) -> None:
    columns = ["service", "status", "newest backup", "recoverable age / RPO", "WAL", "verify", "drill"]
    rows = [_row(s, report) for s in report.services]
    if any(s.copies is not None for s in report.services):  # HOOK(copies): engines/ops/copies.py
        columns.append("copies")
        rows = [(*r, _copies_text(s)) for r, s in zip(rows, report.services, strict=True)]
    table(f"status of {report.stack}", columns, rows)
    for s in report.services:
        for problem in s.problems:
            console.print(f"[red]{problem}[/red]", soft_wrap=True)


def _print_escalation(stack: Stack) -> None:
    from drkit.engines.ops.notify import escalation_lines

    lines = escalation_lines(stack)
    if lines:
        console.print("\n".join(lines), markup=False, soft_wrap=True)


def _copies_text(s: ServiceStatus) -> str:
    """`3 copies, 2 repositories, 1 off-site: 3-2-1 met` (JSON keeps the numbers)."""
    c = s.copies
    if c is None:
        return "-"
    if "error" in c:
        return f"unknown: {c['error']}"
    text = f"{c['copies']} copies, {c['repositories']} repositories, {c['offsite']} off-site"
    if "immutable" in c:
        text += f", {c['immutable']} immutable"
    return text + (": 3-2-1 met" if c["rule_321"] else ": 3-2-1 not met")


def _notify_red(stack: Stack, report: StatusReport, *, quiet: bool) -> None:
    from drkit.engines.ops.notify import failure_message, send

    message = failure_message(report, stack)
    if message is None:
        return
    if not stack.notifications:
        err_console.print("no notification targets in stack.yaml (notifications.targets): nothing sent")
        return
    for d in send(stack, message):
        if not quiet and not d.skipped:
            console.print(f"notified {d.target}" if d.sent else f"[red]could not notify {d.target}[/red]")


def metrics_cmd(
    ctx: typer.Context,
    listen: str = typer.Option(
        "127.0.0.1:9188", "--listen", help="HOST:PORT to serve /metrics on.", metavar="HOST:PORT"
    ),
    once: bool = typer.Option(False, "--once", help="Print one scrape to stdout and exit."),
) -> None:
    """Serve the status as Prometheus metrics (computed afresh on every scrape).

    Example: drkit metrics --listen 0.0.0.0:9188;  drkit metrics --once
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.metrics import exposition, registry_for
    from drkit.engines.ops.status import build_status, copies_probe

    opts = options(ctx)
    opts.refuse_json(
        "metrics are the Prometheus text format (`drkit status --output json` gives the same figures as JSON)"
    )
    ws = open_workspace(opts.stack())

    def build() -> StatusReport:
        return build_status(ws, copies=copies_probe(ws))

    if once:
        typer.echo(exposition(build).decode(), nl=False)
        return
    _serve(listen, registry_for(build))


def _serve(listen: str, registry: Any) -> None:
    import threading

    from prometheus_client import start_http_server

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--listen {listen!r}: give HOST:PORT, like 127.0.0.1:9188")
    try:
        server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    console.print(f"serving drkit metrics on http://{listen}/metrics")
    try:
        threading.Event().wait()
    finally:
        server.shutdown()
        thread.join(timeout=5)


@notify_app.command("test")
def notify_test_cmd(
    ctx: typer.Context,
    severity: str = typer.Option("critical", "--severity", help="info, warning or critical."),
    at: str = typer.Option(
        None,
        "--at",
        help="With --dry-run: route as at this time (2026-12-07 22:00 Europe/Berlin; without a "
        "zone, the local one).",
    ),
) -> None:
    """Send a test message to every target that takes this severity now (its min_severity and
    its hours: business, after or always, in notifications.time_zone); exit 1 if one fails.
    --dry-run shows where it would go and why, sending nothing.

    Example: drkit notify test --severity warning;  drkit --dry-run notify test --at "2026-12-07 22:00Z"
    """
    from drkit.engines.ops.notify import test_message
    from drkit.infra.clock import SystemClock

    opts = options(ctx)
    stack = opts.stack()
    now = operator_time("--at", at, say=not opts.quiet) if at else SystemClock().now()
    message = test_message(stack, _severity(severity), now)
    if opts.dry_run:
        _show_routes(opts, stack, message, now)
        return
    if at:
        raise UsageError("--at only goes with --dry-run (a real message is sent now)")
    _deliver(opts, stack, message)


def _show_routes(opts: Options, stack: Stack, message: Any, now: Any) -> None:
    from drkit.engines.ops.notify import describe_target, route

    rows = [(describe_target(t), route(stack, t, message.severity, now)) for t in stack.notifications]
    if opts.json:
        emit_json([{"target": t, "sends": why is None, "why": why} for t, why in rows])
        return
    for target, why in rows:
        console.print(f"{target}: " + ("would send" if why is None else f"skipped: {why}"), markup=False)


@notify_app.command("digest")
def notify_digest_cmd(
    ctx: typer.Context,
    print_only: bool = typer.Option(False, "--print", help="Print the digest; send nothing."),
) -> None:
    """Send the digest of the last 24 hours: backups taken, drills and recoveries run.

    Example: drkit notify digest --print
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.notify import digest

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    message = digest(ws, until=ws.clock.now())
    if print_only:
        if opts.json:
            emit_json({"title": message.title, "body": message.body, "severity": message.severity})
        else:
            console.print(f"{message.title}\n{message.body}", soft_wrap=True, markup=False)
        return
    _deliver(opts, ws.stack, message)


def _severity(text: str) -> Severity:
    try:
        return Severity(text)
    except ValueError:
        raise UsageError(f"--severity {text!r}: use info, warning or critical") from None


def _deliver(opts: Options, stack: Stack, message: Any) -> None:
    from drkit.domain.errors import OperationError
    from drkit.engines.ops.notify import send

    if not stack.notifications:
        raise UsageError("no notification targets in stack.yaml (notifications.targets)")
    deliveries = send(stack, message)
    if opts.json:
        emit_json(deliveries)
    else:
        for d in deliveries:
            state = f"skipped ({d.why})" if d.skipped else ("sent" if d.sent else "[red]FAILED[/red]")
            console.print(f"{d.target}: {state}")
    failed = [d.target for d in deliveries if not d.sent and not d.skipped]
    if failed:
        raise OperationError(f"could not notify {', '.join(failed)}")


def register(app: typer.Typer) -> None:
    app.command("status")(status_cmd)
    app.command("metrics")(metrics_cmd)
    app.add_typer(notify_app, name="notify")
