"""`drkit sandbox up|down|status`: a real local stack for demos, drills and tests."""

from __future__ import annotations

import typer

from drkit.cli.context import options
from drkit.cli.render import console, emit_json, table

DEFAULT_DIR = ".drkit-sandbox"
sandbox_app = typer.Typer(help="A real local stack on loopback ports (PostgreSQL, ...).")


@sandbox_app.command("up")
def up_cmd(
    ctx: typer.Context,
    directory: str = typer.Option(DEFAULT_DIR, "--dir", help="Where the sandbox lives."),
    wal_mode: str = typer.Option("archive", help="archive (archive_command) or stream."),
    encrypt: bool = typer.Option(False, help="Encrypt backups with a generated age key."),
) -> None:
    """Start the sandbox (create it first if needed) and write its stack.yaml.

    Example: drkit sandbox up --dir /tmp/sb && drkit --config /tmp/sb/stack.yaml backup
    """
    from drkit.domain.errors import UsageError
    from drkit.sandbox.stack import SandboxOptions, status, up

    if wal_mode not in ("archive", "stream"):
        raise UsageError(f"--wal-mode must be archive or stream, not {wal_mode!r}")
    opts = options(ctx)
    box = up(directory, SandboxOptions(wal_mode=wal_mode, encrypt=encrypt))
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
) -> None:
    """A whole recovery drill on the sandbox: backups, an accidental deletion, point-in-time
    recovery to just before it, deep verification; with measured RTO and RPO.

    Example: drkit demo --keep
    """
    from pathlib import Path

    from drkit.domain.durations import format_duration
    from drkit.sandbox.demo import run_demo

    opts = options(ctx)
    say = (lambda _m: None) if opts.json else console.print
    journal = run_demo(Path(directory) if directory else None, keep=keep, say=say)
    if opts.json:
        import json

        emit_json(json.loads(journal.to_json()))
    else:
        table(
            "demo drill",
            ["step", "result", "time"],
            [
                (s.name, "[green]ok[/green]" if s.ok else "[red]FAILED[/red]", f"{s.seconds:.1f}s")
                for s in journal.steps
            ],
        )
        if journal.rto_seconds is not None:
            rto_t = journal.rto_target_seconds
            rpo_t = journal.rpo_target_seconds
            console.print(
                f"RTO (PostgreSQL PITR): {format_duration(journal.rto_seconds)}"
                + (f" against a target of {format_duration(rto_t)}" if rto_t else "")
            )
            console.print(
                f"RPO (data lost before the target): {format_duration(journal.rpo_seconds or 0)}"
                + (f" against a target of {format_duration(rpo_t)}" if rpo_t else "")
            )
        console.print("[green]demo passed[/green]" if journal.ok else "[red]demo failed[/red]")
        if keep:
            console.print(f"sandbox kept in {journal.sandbox_dir}")
    if not journal.ok:
        raise typer.Exit(1)
    if (
        journal.rto_seconds
        and journal.rto_target_seconds
        and journal.rto_seconds > journal.rto_target_seconds
    ):
        raise typer.Exit(4)


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
    app.command("demo")(demo_cmd)
