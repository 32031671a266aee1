"""The `drkit` command: global options, sub-command wiring, and the error -> exit code map."""

from __future__ import annotations

import os
import sys
import traceback

import typer
from rich.markup import escape

from drkit import __version__
from drkit.cli.argv import hoist_global_options
from drkit.cli.context import Options, options
from drkit.cli.render import emit_json, err_console, json_stdout
from drkit.domain.errors import DrkitError, ExitCode, UsageError

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


PROG = "drkit"
COMPLETE_VAR = "_DRKIT_COMPLETE"  # what the completion scripts set to ask drkit for candidates
SHELLS = ("bash", "zsh", "fish")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"drkit {__version__}")
        raise typer.Exit(0)


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
    quiet: bool = typer.Option(
        False, "--quiet", help="No step lines, progress or heartbeats (results and errors still print)."
    ),
    _version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print drkit's version and exit."
    ),
) -> None:
    if output not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--output")
    if output == "json":
        json_stdout()  # stdout carries the one JSON document; any other line goes to stderr
    opts = Options(config=config, output=output, yes=yes, dry_run=dry_run, debug=debug, quiet=quiet)
    ctx.obj = opts
    ctx.call_on_close(opts.close)


@app.command()
def version(ctx: typer.Context) -> None:
    """Print drkit's version (also `drkit --version`)."""
    from drkit.cli.render import console

    if options(ctx).json:
        emit_json({"version": __version__})
        return
    console.print(__version__)


@app.command()
def completion(
    ctx: typer.Context,
    shell: str = typer.Argument(..., help="bash, zsh or fish."),
) -> None:
    """Print the shell completion script for drkit (its commands and options).

    Examples:
      drkit completion bash > /etc/bash_completion.d/drkit
      drkit completion zsh > "${fpath[1]}/_drkit"
      drkit completion fish > ~/.config/fish/completions/drkit.fish
    """
    # typer's own scripts (it vendors click): they call back with COMPLETE_VAR set
    from typer._completion_classes import completion_init
    from typer._completion_shared import get_completion_script

    options(ctx).refuse_json("completion prints a shell script")
    if shell not in SHELLS:
        raise UsageError(f"no completion for {shell!r}: use {', '.join(SHELLS)}")
    completion_init()
    typer.echo(get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell), nl=False)


def _register() -> None:
    from drkit.cli import (
        backup_cmds,
        check_cmds,
        drill_cmds,
        keep_cmds,
        offsite_cmds,
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
        verify_cmds,
        wal_cmds,
    )

    modules = (
        sandbox_cmds,
        backup_cmds,
        keep_cmds,
        wal_cmds,
        restore_cmds,
        verify_cmds,
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
        offsite_cmds,
        schedule_cmds,
    )
    for module in modules:
        module.register(app)


def main(argv: list[str] | None = None) -> None:
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    _register()
    if os.environ.get(COMPLETE_VAR):  # a completion script asks for candidates
        from typer._completion_classes import completion_init

        completion_init()
    json_mode = any(a in ("json", "--output=json", "-o=json") for a in args[:8]) and (
        "--output" in args or "-o" in args or "--output=json" in args
    )
    debug = "--debug" in args
    try:
        code = app(args=args, standalone_mode=False, prog_name=PROG, complete_var=COMPLETE_VAR)
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
            if json_mode:  # a usage error is JSON too, for a script that asked for JSON
                message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
                emit_json({"error": message, "hint": None, "exit_code": 2, "kind": "UsageError"})
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
    problems = list(getattr(exc, "problems", ()))
    if json_mode:
        body: dict[str, object] = {
            "error": exc.message,
            "hint": exc.hint,
            "exit_code": int(exc.exit_code),
            "kind": type(exc).__name__,
        }
        if problems:
            body["problems"] = problems
        emit_json(body)
    err_console.print(f"[red]error:[/red] {exc.message}", soft_wrap=True, markup=True, highlight=False)
    if len(problems) > 1:  # one line each: file:line: key: what is wrong, what to do
        for problem in problems:
            err_console.print(f"  {escape(problem)}", soft_wrap=True, highlight=False)
    if exc.hint:
        err_console.print(f"  hint: {exc.hint}", soft_wrap=True)
