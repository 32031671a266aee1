"""`drkit offsite setup | prove | retrieve`: an S3 repository's storage class, lifecycle
transitions, Object Lock and archive-tier restores (docs/offsite.md)."""

from __future__ import annotations

import typer

from drkit.cli.context import options
from drkit.cli.render import console, emit_json, table

offsite_app = typer.Typer(help="Off-site S3: bucket setup, the Object Lock proof, archive-tier restores.")

REPO = typer.Option(None, "--repo", help="The S3 repository (default: the only non-primary S3 one).")


@offsite_app.command("setup")
def setup_cmd(
    ctx: typer.Context,
    repo: str = REPO,
    create_bucket: bool = typer.Option(
        False, "--create-bucket", help="Create the bucket with Object Lock on (it cannot be turned on later)."
    ),
    access_key: str = typer.Option(
        None,
        "--access-key",
        help="The bucket admin's access key, as a reference (env:NAME, file:/path).",
        metavar="REF",
    ),
    secret_key: str = typer.Option(
        None, "--secret-key", help="The bucket admin's secret key, as a reference.", metavar="REF"
    ),
) -> None:
    """Configure the bucket: versioning, Object Lock default retention, lifecycle.

    Configure the bucket as stack.yaml says: versioning, the Object Lock default retention
    (object_lock), the lifecycle transitions of bulk data (lifecycle). Run once, with the bucket
    admin's credentials; `drkit sync` needs none of these rights. Exit 3 when a step was refused.

    Example: drkit offsite setup --create-bucket --access-key env:ADMIN_KEY --secret-key file:/root/admin.key
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.offsite import setup_repository

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    credentials = _credentials(access_key, secret_key)
    steps = setup_repository(
        ws, repo, dry_run=opts.dry_run, create_bucket=create_bucket, credentials=credentials
    )
    if opts.json:
        emit_json({"steps": [s.to_dict() for s in steps]})
    else:
        table("offsite setup", ["step", "status", "detail"], [(s.name, s.status, s.detail) for s in steps])
    if any(s.status in ("refused", "denied", "unsupported") for s in steps):
        raise typer.Exit(3)


def _credentials(access_ref: str | None, secret_ref: str | None) -> tuple[str, str] | None:
    """Both references resolved, or None when neither is given."""
    from drkit.config.secrets import SecretMissing, resolve_secret
    from drkit.domain.errors import UsageError

    if access_ref is None and secret_ref is None:
        return None
    if access_ref is None or secret_ref is None:
        raise UsageError("give both --access-key and --secret-key (or neither)")
    try:
        return resolve_secret(access_ref), resolve_secret(secret_ref)
    except SecretMissing as exc:
        raise UsageError(
            f"--access-key/--secret-key: {exc}", hint="a reference: env:NAME or file:/path"
        ) from exc


@offsite_app.command("prove")
def prove_cmd(ctx: typer.Context, repo: str = REPO) -> None:
    """Prove on a canary that the server enforces Object Lock.

    On a canary object written as sync writes,
    a delete of the locked version must be refused (and the version still be there). Exit 3
    when it is not proven. `drkit sync` runs the same proof after each copy.

    Example: drkit offsite prove --repo offsite
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.offsite import prove

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    name, proof = prove(ws, repo)
    if opts.json:
        emit_json({"repository": name, **proof.to_dict()})
    else:
        state = "immutable" if proof.immutable else f"NOT immutable ({proof.verdict.value})"
        console.print(f"{name}: {state}: {proof.detail}", markup=False, soft_wrap=True)
    if not proof.immutable:
        raise typer.Exit(3)


@offsite_app.command("retrieve")
def retrieve_cmd(
    ctx: typer.Context,
    backups: list[str] = typer.Argument(None, help="Backup ids (default: each service's newest there)."),
    repo: str = REPO,
    service: str = typer.Option(None, "--service", help="Only this service's backups."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until every object is readable."),
) -> None:
    """Bring backups back from the archive tier (restore requests, then a wait).

    Request the restore, from GLACIER or DEEP_ARCHIVE, of everything a restore of these
    backups reads (their files; for PostgreSQL the WAL from each base backup on), all at once,
    and wait until it is readable, showing the time. A restore that meets an archived object
    does this by itself (`archive_restore` in stack.yaml); ahead of time it saves hours.

    Example: drkit offsite retrieve --repo offsite --service postgres;  drkit --dry-run offsite retrieve
    """
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.offsite import retrieve

    opts = options(ctx)
    ws = open_workspace(opts.stack())
    report = retrieve(ws, repo, list(backups or ()), service=service, wait=wait, dry_run=opts.dry_run)
    if opts.json:
        emit_json(report.to_dict())
        return
    dry = " (dry run: nothing requested)" if opts.dry_run else ""
    console.print(
        f"{report.repository} ({report.location}): {len(report.backups)} backup(s), "
        f"{report.objects} object(s), {report.archived} in an archive tier{dry}",
        markup=False,
        soft_wrap=True,
    )
    if report.thaw is not None:
        t = report.thaw
        done = f"readable after {t.seconds:.0f}s" if wait else "not waited for (--no-wait)"
        console.print(
            f"{t.requested} restore request(s) sent, {t.in_progress} already under way: {done}", markup=False
        )


def register(app: typer.Typer) -> None:
    app.add_typer(offsite_app, name="offsite")
