"""The `drkit` executable. `wal-push` and `wal-fetch` run once per WAL segment, from
PostgreSQL itself: they take a light path (argparse, no typer, rich or psycopg); everything
else goes to the full command line."""

from __future__ import annotations

import sys

LIGHT = ("wal-push", "wal-fetch")
FETCH_ERROR = 126  # = wal_light.FETCH_ERROR, which may be the very import that fails


def main() -> None:
    from drkit.infra.interrupt import take_signals

    take_signals()  # what drkit starts can be asked to stop, however drkit was started
    raw = sys.argv[1:]
    if "wal-fetch" in raw and "--help" not in raw:
        sys.exit(_fetch(raw))
    from drkit.cli.argv import hoist_global_options

    args = hoist_global_options(raw)
    if any(a in LIGHT for a in args) and "--help" not in args:
        from drkit.cli.wal_light import main as light

        sys.exit(light(args))
    from drkit.cli.app import main as full

    full()


def _fetch(raw: list[str]) -> int:
    """restore_command: an exit status below 126 tells PostgreSQL "no such file" and ends
    recovery, so nothing that goes wrong here (an import, a bug) may exit 1 by accident."""
    try:
        from drkit.cli.argv import hoist_global_options
        from drkit.cli.wal_light import main as light

        return light(hoist_global_options(raw))
    except BaseException as exc:  # every failure must stop recovery
        detail = (str(exc).splitlines() or [""])[0]
        sys.stderr.write(f"error: wal-fetch failed: {type(exc).__name__}: {detail}\n")
        return FETCH_ERROR
