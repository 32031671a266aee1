"""`drkit search rebuild`: a MeiliSearch index rebuilt from PostgreSQL."""

from __future__ import annotations

import typer

from drkit.cli.context import options, show_plan
from drkit.cli.render import console, duration, emit_json
from drkit.domain.errors import UsageError
from drkit.domain.progress import Unit
from drkit.domain.stack import Service, Stack

search_app = typer.Typer(help="MeiliSearch: rebuild an index from PostgreSQL.")


@search_app.command("rebuild")
def rebuild_cmd(
    ctx: typer.Context,
    index: str = typer.Argument(..., help="The index to rebuild, e.g. messages."),
    query: str = typer.Option(
        None, "--query", "-q", help="SQL giving one row per document (default: the index's known query)."
    ),
    primary_key: str = typer.Option(
        None, "--primary-key", help="The column that identifies a document (id)."
    ),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=100_000, help="Rows per documents task."),
    service: str = typer.Option(
        None, "--service", "-s", help="The meilisearch service (default: the only one)."
    ),
    embedder_key: list[str] = typer.Option(
        [],
        "--embedder-key",
        help="NAME=env:VAR (or file:/path, dotenv:/path#KEY): the apiKey of the live index's "
        "embedder NAME, which MeiliSearch shows only masked. Repeatable; never the key itself.",
    ),
) -> None:
    """Rebuild INDEX from PostgreSQL: the fallback when no dump can be restored. Fills a fresh
    index beside the live one and swaps it in; exit 3 if the counts then differ.

    Example: drkit search rebuild messages --batch-size 2000
    """
    from drkit.engines.search.rebuild import rebuild_index, source_for
    from drkit.engines.search.secrets import parse_key_refs

    opts = options(ctx)
    stack = opts.stack()
    svc = _service(stack, service)
    source = source_for(index, query, primary_key, svc)
    keys = parse_key_refs(embedder_key)
    if opts.dry_run:
        text = f"would rebuild {svc.name} index {index!r} from: {source.query} (key {source.primary_key})"
        data = {"service": svc.name, "index": index, "query": source.query, "primary_key": source.primary_key}
        show_plan(opts, text, data)
        return
    opts.progress.step(f"rebuild {svc.name} index {index!r} from PostgreSQL, beside the live one")
    progress = opts.progress.meter(f"rows into {index}", unit=Unit.ITEMS)
    result = rebuild_index(
        stack, svc, index, source, batch_size=batch_size, progress=progress, embedder_keys=keys
    )
    if opts.json:
        emit_json({"ok": result.ok, **result.__dict__})
    else:
        how = "built beside the live index and swapped in" if result.swapped else "created"
        style = "green" if result.ok else "red"
        console.print(
            f"[{style}]index {result.index}[/{style}]: {result.rows} rows -> {result.documents} documents "
            f"in {result.batches} batches, {how}, {duration(result.seconds)}"
        )
    if not result.ok:
        raise typer.Exit(3)


def _service(stack: Stack, name: str | None) -> Service:
    if name is not None:
        found = stack.service(name)
        if found.kind != "meilisearch":
            raise UsageError(f"service {name!r} is a {found.kind}, not meilisearch")
        return found
    candidates = stack.services_of_kind("meilisearch")
    if len(candidates) != 1:
        raise UsageError(f"name the meilisearch service with --service: the stack has {len(candidates)}")
    return candidates[0]


def register(app: typer.Typer) -> None:
    app.add_typer(search_app, name="search")
