"""`drkit sandbox up|down|status`: a real local stack for demos, drills and tests."""

from __future__ import annotations

from pathlib import Path

import typer

from drkit.cli.context import options, show_plan
from drkit.cli.render import console, duration, emit_json, table

DEFAULT_DIR = ".drkit-sandbox"
sandbox_app = typer.Typer(help="A real local stack on loopback ports (PostgreSQL, ...).")


@sandbox_app.command("up")
def up_cmd(
    ctx: typer.Context,
    directory: str = typer.Option(DEFAULT_DIR, "--dir", help="Where the sandbox lives."),
    wal_mode: str = typer.Option("archive", help="archive (archive_command) or stream."),
    encrypt: bool = typer.Option(False, help="Encrypt backups with a generated age key."),
    pg_bin_dir: str = typer.Option(
        "", help="PostgreSQL server binaries to run (any major); default: the newest installed."
    ),
) -> None:
    """Start the sandbox (create it first if needed) and write its stack.yaml.

    Example: drkit sandbox up --dir /tmp/sb && drkit --config /tmp/sb/stack.yaml backup
    """
    from drkit.domain.errors import UsageError
    from drkit.sandbox.stack import SandboxOptions, status, up

    if wal_mode not in ("archive", "stream"):
        raise UsageError(f"--wal-mode must be archive or stream, not {wal_mode!r}")
    opts = options(ctx)
    if opts.dry_run:
        text = f"would start the sandbox in {directory} (WAL {wal_mode}) and write its stack.yaml there"
        show_plan(opts, text, {"directory": directory, "wal_mode": wal_mode, "encrypt": encrypt})
        return
    box = up(directory, SandboxOptions(wal_mode=wal_mode, encrypt=encrypt, pg_bin_dir=pg_bin_dir or None))
    if opts.json:
        emit_json(status(box.dir))
        return
    console.print(f"sandbox up in {box.dir}")
    console.print(f"  {'config':<12} {box.config_path}")
    for name, service in status(box.dir)["services"].items():
        console.print(f"  {name:<12} {service.get('dsn') or service.get('url') or ''}")
    console.print(f"next: drkit --config {box.config_path} backup")


@sandbox_app.command("down")
def down_cmd(
    ctx: typer.Context,
    directory: str = typer.Option(DEFAULT_DIR, "--dir", help="Where the sandbox lives."),
) -> None:
    """Stop every service the sandbox started, and nothing else. Data stays on disk."""
    from drkit.sandbox.stack import down

    stopped = down(directory)
    if options(ctx).json:
        emit_json({"stopped": stopped})
    else:
        console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@sandbox_app.command("status")
def status_cmd(
    ctx: typer.Context,
    directory: str = typer.Option(DEFAULT_DIR, "--dir", help="Where the sandbox lives."),
) -> None:
    """Each service's DSN or URL and whether it runs (`--output json` for scripts)."""
    from drkit.sandbox.stack import status

    report = status(directory)
    if options(ctx).json:
        emit_json(report)
        return
    rows = [
        (name, s.get("kind"), s.get("dsn") or s.get("url") or s.get("pid"), s.get("running"))
        for name, s in report["services"].items()
    ]
    table(f"sandbox {report['dir']}", ["service", "kind", "address", "running"], rows)


def demo_cmd(
    ctx: typer.Context,
    directory: str = typer.Option(None, "--dir", help="Sandbox directory (default: a new one in /tmp)."),
    keep: bool = typer.Option(False, "--keep", help="Leave the sandbox running afterwards."),
    report: str = typer.Option(
        ".drkit-sandbox/reports", "--report", help="Where the drills' HTML reports are written."
    ),
) -> None:
    """The whole job on the sandbox stack: sandbox up, check, a stack-wide backup, then every
    drill of the monthly rotation on isolated copies restored from it (database corruption,
    Redis recovery, data loss by PITR, full outage), failures injected for real, RTO and RPO
    measured against the targets; a summary table and an HTML report per drill.

    Example: drkit demo --keep
    """
    from drkit.cli.drill_cmds import summary, write_reports
    from drkit.cli.recover_cmds import step_printer
    from drkit.cli.restore_cmds import drkit_argv
    from drkit.sandbox.demo import run_demo

    opts = options(ctx)
    if opts.dry_run:
        text = "would start a sandbox, back it up as a set, and run every drill of the rotation on copies"
        show_plan(opts, text, {"directory": directory, "keep": keep, "report": report})
        return
    say = (lambda _m: None) if opts.json else (lambda m: console.print(f"    {m}"))
    result = run_demo(
        Path(directory) if directory else None,
        keep=keep,
        say=say,
        on_step=None if opts.json else step_printer(opts),
        drkit_argv=drkit_argv(),
    )
    paths = write_reports(result.workspace, result.drills, report) if result.workspace else []
    if not opts.json:
        table("demo", ["step", "time", "result"], [(n, duration(s), d) for n, s, d in result.setup])
        for path in paths:
            console.print(f"report: {path.resolve()}")
        console.print(
            f"demo took {duration(result.seconds)}"
            + (f"; sandbox kept in {result.sandbox_dir}" if keep else "")
        )
    summary(opts, result.drills)


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
    app.command("demo")(demo_cmd)
