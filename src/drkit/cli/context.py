"""What every command receives: the global options and a lazily loaded stack."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from drkit.cli.progress import Reporter, mode_for
from drkit.config.loader import find_config, load_stack
from drkit.domain.errors import UsageError
from drkit.domain.stack import Stack


@dataclass
class Options:
    config: str | None = None
    output: str = "text"
    yes: bool = False
    dry_run: bool = False
    debug: bool = False
    quiet: bool = False
    _stack: Stack | None = field(default=None, repr=False)
    _reporter: Reporter | None = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return self.output == "json"

    def refuse_json(self, why: str) -> None:
        """A command whose output cannot be JSON says so (exit 2) rather than print text."""
        if self.json:
            raise UsageError(f"--output json: {why}")

    @property
    def progress(self) -> Reporter:
        """Where engines report steps and work (cli/progress.py); closed when the command ends."""
        if self._reporter is None:
            self._reporter = Reporter(mode_for(quiet=self.quiet, json=self.json))
        return self._reporter

    def close(self) -> None:
        if self._reporter is not None:
            self._reporter.close()

    def confirm(self, question: str) -> None:
        """Ask before a destructive action (`--yes` answers it). Without a terminal to ask on,
        refuse (exit 2) and say the whole question on one line: what would have been done."""
        if self.yes:
            return
        if not sys.stdin.isatty():
            head, *rest = question.splitlines()
            said = " ".join([head, "; ".join(line.strip().removeprefix("- ") for line in rest)]).strip()
            raise UsageError(f"{said} Refusing without --yes (no terminal to ask on)")
        if not typer.confirm(question):
            raise typer.Abort()

    def config_path(self) -> Path:
        return find_config(self.config)

    def stack(self, *, strict_secrets: bool = True) -> Stack:
        if self._stack is None:
            self._stack = load_stack(self.config_path(), strict_secrets=strict_secrets)
        return self._stack


def show_plan(opts: Options, text: str, data: dict[str, Any]) -> None:
    """What a --dry-run would do: `text` for a person, `{"dry_run": true, **data}` with
    --output json."""
    from drkit.cli.render import console, emit_json

    if opts.json:
        emit_json({"dry_run": True, **data})
    else:
        console.print(text, markup=False, highlight=False, soft_wrap=True)


def options(ctx: typer.Context) -> Options:
    obj = ctx.find_root().obj
    if not isinstance(obj, Options):
        obj = Options()
        ctx.find_root().obj = obj
    return obj
