"""The `drkit` executable. `wal-push` and `wal-fetch` run once per WAL segment, from
PostgreSQL itself: they take a light path (argparse, no typer, rich or psycopg); everything
else goes to the full command line."""

from __future__ import annotations

import sys

LIGHT = ("wal-push", "wal-fetch")


def main() -> None:
    from drkit.cli.argv import hoist_global_options

    args = hoist_global_options(sys.argv[1:])
    if any(a in LIGHT for a in args) and "--help" not in args:
        from drkit.cli.wal_light import main as light

        sys.exit(light(args))
    from drkit.cli.app import main as full

    full()
