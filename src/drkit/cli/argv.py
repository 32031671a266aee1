"""Argument handling shared by the full CLI and the light WAL entry point (no typer here)."""

from __future__ import annotations

GLOBAL_FLAGS = {"--yes", "-y", "--dry-run", "--debug", "--quiet"}
GLOBAL_VALUED = {"--config", "-c", "--output", "-o"}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let global options stand anywhere (`drkit sandbox status --output json`)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if arg in GLOBAL_FLAGS or (name in GLOBAL_VALUED and "=" in arg):
            front.append(arg)
        elif arg in GLOBAL_VALUED and i + 1 < len(argv):
            front.extend(argv[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest
