"""Rendering: engines return data; this turns it into text tables or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

from drkit.domain.durations import format_duration
from drkit.domain.sizes import format_size


def _console(stderr: bool) -> Console:
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return Console(stderr=stderr, highlight=False)
    # Piped output (logs, CI, a script): tables 160 columns wide rather than folded at 80, and
    # a message never broken: a long path stays on its line, whole, for grep and copy.
    return Console(stderr=stderr, highlight=False, width=160, soft_wrap=True)


console = _console(False)
err_console = _console(True)


def json_stdout() -> None:
    """--output json: what `console` prints goes to stderr from now on, so stdout holds only
    what emit_json writes (a command that forgot its JSON shows as an empty stdout, never as
    text where a script expects JSON)."""
    console.file = sys.stderr


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, sort_keys=False) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*[("" if v is None else str(v)) for v in row])
    console.print(t)


def human_bytes(n: int | float) -> str:
    return format_size(n)


def duration(seconds: float | timedelta | None) -> str:
    """The one duration format (domain/durations.py), `-` for none."""
    return "-" if seconds is None else format_duration(seconds)


STATUS_STYLE = {"ok": "green", "warning": "yellow", "failed": "red"}


def status_text(status: str) -> str:
    style = STATUS_STYLE.get(status, "white")
    return f"[{style}]{status}[/{style}]"
