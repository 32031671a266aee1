"""`drkit prune`: remove what the retention policy no longer keeps (docs/retention.md)."""

from __future__ import annotations

import typer

from drkit.cli.context import options
from drkit.cli.render import console, emit_json
from drkit.domain.errors import UsageError


def prune_cmd(
    ctx: typer.Context,
    services: list[str] = typer.Argument(None, help="Services to prune (default: every one)."),
    repo: str = typer.Option(None, "--repo", help="Repository to prune (default: the primary one)."),
    force_skip: list[str] = typer.Option(
        None,
        "--force-skip",
        metavar="ID",
        help="Prune as if this damaged backup (unreadable manifest) did not exist; repeatable.",
    ),
) -> None:
    """Remove stack-wide sets, backups and WAL the retention policy no longer keeps, under
    each service's lock. Sets first (`sets: {retention: ...}`; the newest always stays): a
    backup a kept set names stays.

    `--dry-run` lists what would go and the rule that decided; nothing is changed.

    While a manifest of a service cannot be read or checked, nothing of that service is
    removed (its backups, WAL, object versions) and prune exits 3 naming it: what it needs
    is unknown. `--force-skip ID` prunes past it. Leftovers of killed writes (temporary
    files, unfinished uploads) older than a day go too (rule `leftover`).

    Example: drkit prune --dry-run;  drkit prune postgres --output json
    """
    from dataclasses import replace

    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.prune import describe, prune, unknown_force_skip
    from drkit.engines.ops.set_retention import describe_sets, prune_sets

    opts = options(ctx)
    stack = opts.stack()
    if repo is not None:
        if repo not in stack.repositories:
            known = ", ".join(sorted(stack.repositories))
            raise UsageError(f"no repository {repo!r} in {stack.source_path} (known: {known})")
        stack = replace(stack, primary_repository=repo)
    unknown = [n for n in services or () if n not in stack.services]
    if unknown:
        raise UsageError(f"no service {unknown[0]!r} in {stack.source_path}")
    ws = open_workspace(stack)
    names = list(services) if services else sorted(stack.services)
    skip = frozenset(force_skip or ())
    unknown_force_skip(ws, names, skip)
    sets = prune_sets(ws, dry_run=opts.dry_run)
    results = [
        prune(ws, stack.services[name], dry_run=opts.dry_run, unkept_sets=sets.dropped, force_skip=skip)
        for name in names
    ]
    refused = [r.plan.service for r in results if r.refused]
    if opts.json:
        emit_json({"sets": sets.to_dict(), "services": [r.to_dict() for r in results], "refused": refused})
    else:
        for line in describe_sets(sets):
            console.print(line, soft_wrap=True, markup=False)
        for result in results:
            for line in describe(result):
                console.print(line, soft_wrap=True, markup=False)
    if refused:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("prune")(prune_cmd)
