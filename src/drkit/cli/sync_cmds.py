"""`drkit sync` (off-site copies) and the report of `drkit verify --repo NAME`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from drkit.cli.context import Options, options
from drkit.cli.render import console, emit_json, human_bytes, status_text, table

if TYPE_CHECKING:
    from drkit.engines.core.workspace import Workspace


def sync_cmd(
    ctx: typer.Context,
    to: str = typer.Option(None, "--to", help="Repository to copy to (default: every non-primary one)."),
) -> None:
    """Copy committed backups, WAL, objects data, sets and journals to another repository:
    only what is missing there, each file re-hashed there, each manifest last.

    Example: drkit sync --to offsite
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.sync import sync, targets

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    if opts.dry_run:
        console.print("would sync to " + ", ".join(t.name for t in targets(ws, to)))
        return
    reports = sync(ws, to)
    if opts.json:
        emit_json({"repositories": [r.to_dict() for r in reports]})
        return
    for r in reports:
        console.print(
            f"{r.repository} ({r.location}{', encrypted' if r.encrypted else ''}): "
            f"{r.copied} files copied ({human_bytes(r.bytes)}), {r.skipped} already there, "
            f"{len(r.backups)} backups committed, in {r.seconds:.1f}s"
        )
        for item in r.not_copied:
            console.print(f"  not copied (its manifest is damaged at the source): {item}", markup=False)
        for item in r.not_files:
            console.print(f"  not copied (not a stored file; see drkit verify --repo): {item}", markup=False)


def verify_copy(opts: Options, ws: Workspace) -> None:
    """Every backup and set of one repository, checked there; exit 3 on a problem."""
    from drkit.engines.stack.verify import verify_repository

    result = verify_repository(ws)
    if opts.json:
        emit_json(
            {
                "repository": result.location,
                "ok": result.ok,
                "backups": [
                    {"backup_id": r.backup_id, "service": r.service, "ok": r.ok, "results": r.results}
                    for r in result.backups
                ],
                "sets": result.sets,
                "wal": result.wal,
                "incomplete": result.incomplete,
                "strays": [
                    {"key": s.key, "kind": s.kind.value, "detail": s.detail, "damage": not s.kind.leftover}
                    for s in result.strays
                ],
            }
        )
    else:
        rows = [
            (f"{r.service}/{r.backup_id}", c.name, status_text(c.status.value), c.detail)
            for r in result.backups
            for c in r.results
        ]
        rows += [("", c.name, status_text(c.status.value), c.detail) for c in (*result.wal, *result.sets)]
        table(f"verify {result.location}", ["backup", "check", "status", "detail"], rows)
        for item in result.incomplete:
            console.print(f"[yellow]incomplete (no manifest, not a backup):[/yellow] {item}")
        for stray in result.strays:
            label = "leftover of a killed write (prune removes it after a day)"
            if not stray.kind.leftover:
                label = "[red]DAMAGE, not a stored file (never followed or copied; remove it)[/red]"
            console.print(f"{label}: ", end="")
            console.print(f"{stray.key}: {stray.detail}", markup=False)
        console.print("[green]ok[/green]" if result.ok else "[red]FAILED[/red]")
    if not result.ok:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_cmd)
