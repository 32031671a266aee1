"""The `drkit` command: global options, sub-command wiring, and the error -> exit code map."""

from __future__ import annotations

import sys
import traceback

import typer

from drkit import __version__
from drkit.cli.argv import hoist_global_options
from drkit.cli.context import Options
from drkit.cli.render import emit_json, err_console
from drkit.domain.errors import DrkitError, ExitCode

app = typer.Typer(
    name="drkit",
    help=(
        "Disaster recovery for a self-hosted backend stack: verified backups, point-in-time "
        "recovery, ordered service recovery, integrity checks, failover and measured drills.\n\n"
        "Example: drkit sandbox up && drkit backup && drkit verify --latest --deep"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def root(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None, "--config", "-c", help="stack.yaml to use (or DRKIT_CONFIG).", metavar="PATH"
    ),
    output: str = typer.Option("text", "--output", "-o", help="text or json."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Answer yes to confirmations."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    if output not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--output")
    ctx.obj = Options(config=config, output=output, yes=yes, dry_run=dry_run, debug=debug)


@app.command()
def version() -> None:
    """Print drkit's version."""
    from drkit.cli.render import console

    console.print(__version__)


def _register() -> None:
    from drkit.cli import (
        backup_cmds,
        check_cmds,
        drill_cmds,
        keep_cmds,
        prune_cmds,
        recover_cmds,
        replica_cmds,
        report_cmds,
        restore_cmds,
        sandbox_cmds,
        schedule_cmds,
        search_cmds,
        stack_cmds,
        status_cmds,
        sync_cmds,
        wal_cmds,
    )

    modules = (
        sandbox_cmds,
        backup_cmds,
        keep_cmds,
        wal_cmds,
        restore_cmds,
        recover_cmds,
        drill_cmds,
        report_cmds,
        check_cmds,
        stack_cmds,
        search_cmds,
        prune_cmds,
        replica_cmds,
        status_cmds,
        sync_cmds,
        schedule_cmds,
    )
    for module in modules:
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    _register()
    json_mode = any(a in ("json", "--output=json", "-o=json") for a in args[:8]) and (
        "--output" in args or "-o" in args or "--output=json" in args
    )
    debug = "--debug" in args
    try:
        code = app(args=args, standalone_mode=False)
    except DrkitError as exc:
        _report(exc, json_mode, debug)
        sys.exit(int(exc.exit_code))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(int(ExitCode.FAILED))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # typer may ship its own copy of click: recognise its exceptions by shape.
        if type(exc).__name__ == "Exit" and hasattr(exc, "exit_code"):
            sys.exit(int(exc.exit_code))
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(int(ExitCode.USAGE))
        if debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/red] unexpected {type(exc).__name__}: {exc}")
        sys.exit(int(ExitCode.FAILED))
    sys.exit(code if isinstance(code, int) else 0)


def _report(exc: DrkitError, json_mode: bool, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    if json_mode:
        emit_json(
            {
                "error": exc.message,
                "hint": exc.hint,
                "exit_code": int(exc.exit_code),
                "kind": type(exc).__name__,
            }
        )
    err_console.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
    if exc.hint:
        err_console.print(f"  hint: {exc.hint}", soft_wrap=True)
