"""What every command receives: the global options and a lazily loaded stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer

from drkit.config.loader import find_config, load_stack
from drkit.domain.stack import Stack


@dataclass
class Options:
    config: str | None = None
    output: str = "text"
    yes: bool = False
    dry_run: bool = False
    debug: bool = False
    _stack: Stack | None = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return self.output == "json"

    def config_path(self) -> Path:
        return find_config(self.config)

    def stack(self, *, strict_secrets: bool = True) -> Stack:
        if self._stack is None:
            self._stack = load_stack(self.config_path(), strict_secrets=strict_secrets)
        return self._stack


def options(ctx: typer.Context) -> Options:
    obj = ctx.find_root().obj
    if not isinstance(obj, Options):
        obj = Options()
        ctx.find_root().obj = obj
    return obj
