"""`drkit replica init|status|rejoin`, `drkit switchover --to NAME`, `drkit failover`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from drkit.cli.context import Options, options
from drkit.cli.render import console, emit_json, table

if TYPE_CHECKING:
    from drkit.engines.core.workspace import Workspace
    from drkit.engines.failover.cluster import Cluster
    from drkit.engines.failover.status import MemberStatus
    from drkit.engines.runbooks.model import Runbook

replica = typer.Typer(help="Streaming standbys of a PostgreSQL service.", no_args_is_help=True)
SERVICE = typer.Option(None, "--service", help="The replicated PostgreSQL service (default: the only one).")


def _cluster(opts: Options, service: str | None) -> tuple[Workspace, Cluster]:
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.failover.cluster import cluster_of

    ws = open_workspace(opts.stack())
    return ws, cluster_of(ws, service)


def _restore_command(ws: Workspace, cluster: Cluster) -> str | None:
    from drkit.adapters.postgres.recovery_conf import restore_command
    from drkit.cli.restore_cmds import drkit_argv

    if not cluster.replication.restore_from_archive:
        return None
    return restore_command(drkit_argv(), ws.stack.source_path, cluster.service.name)


def _archive_fallback(
    ws: Workspace, cluster: Cluster, command: str, say: Callable[[str], None]
) -> str | None:
    """The restore_command a new standby gets, or None. It reads drkit's archive, and a fetch
    from an archive with no identity yet (nothing pushed: a new archive cannot be told from an
    unmounted one) stops recovery. So: a primary that archives closes a segment now and the
    archive records whose WAL it holds (a primary whose archiving fails is named now, not as a
    standby that will not start); a primary that does not archive gives a standby that streams
    only."""
    from drkit.adapters.postgres.client import connect, service_dsn
    from drkit.domain.stack import WalMode
    from drkit.engines.postgres.switch_wal import switch_wal_and_wait
    from drkit.engines.postgres.wal.archive import archive_for

    service = cluster.service
    if archive_for(ws, service).guard.read() is not None:
        return command
    stream = service.postgres is not None and service.postgres.wal_mode is WalMode.STREAM
    if not stream:
        with connect(service_dsn(service, connect_timeout=10)) as conn:
            row = conn.execute("select current_setting('archive_mode')").fetchone()
        if row is None or row[0] == "off":
            say(
                f"the primary of {service.name} does not archive (archive_mode off) and drkit's archive "
                "is empty: the standby streams only, without restore_command"
            )
            return None
    say(f"the WAL archive of {service.name} has no identity yet: switching WAL on the primary")
    switch_wal_and_wait(ws, service, commit=True, say=say)
    return command


@replica.command("init")
def init_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The standby (a key of replication.standbys)."),
    service: str = SERVICE,
    replace: bool = typer.Option(False, "--replace", help="Rebuild a standby whose data directory exists."),
) -> None:
    """Build a streaming standby: pg_basebackup -C -S SLOT, standby.signal, primary_conninfo
    (password in a passfile), restore_command from drkit's archive as a fallback; start it.

    Example: drkit replica init pg2
    """
    from drkit.engines.failover.replica import init

    opts = options(ctx)
    ws, cluster = _cluster(opts, service)
    command = _restore_command(ws, cluster)
    if command is not None:
        command = _archive_fallback(ws, cluster, command, _printer(opts))
    said = init(cluster, name, command, replace=replace, say=_printer(opts))
    _done(opts, {"standby": name, "result": said}, said)


@replica.command("rejoin")
def rejoin_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The member to make a standby of the current primary."),
    service: str = SERVICE,
    force: bool = typer.Option(False, "--force", help="Also when it runs as a primary (split brain)."),
    rebuild: bool = typer.Option(
        False,
        "--rebuild",
        help="A fresh copy (pg_basebackup) instead of pg_rewind; the old data directory is kept beside it.",
    ),
) -> None:
    """A former primary follows the current one: pg_rewind when its history diverged, then
    standby. --rebuild when pg_rewind cannot (no data checksums nor wal_log_hints).

    Example: drkit replica rejoin postgres
    Example: drkit replica rejoin postgres --rebuild
    """
    from drkit.engines.failover.replica import rejoin

    opts = options(ctx)
    ws, cluster = _cluster(opts, service)
    if opts.dry_run:
        how = "move its data directory aside, pg_basebackup" if rebuild else "pg_rewind when needed"
        _done(opts, {"member": name, "plan": how}, f"would make {name} a standby of the primary: {how}")
        return
    said = rejoin(
        cluster, name, _restore_command(ws, cluster), force=force, rebuild=rebuild, say=_printer(opts)
    )
    _done(opts, {"member": name, "result": said}, said)


@replica.command("status")
def status_cmd(ctx: typer.Context, service: str = SERVICE) -> None:
    """Each member: role, slot, lag in bytes and seconds, synchronous or not. Exit 3 when
    two members answer as primary (a split brain).

    Example: drkit replica status --output json
    """
    from drkit.engines.failover.status import replica_status

    opts = options(ctx)
    _ws, cluster = _cluster(opts, service)
    if cluster.replication.patroni is not None:
        _patroni_status(opts, cluster)
        return
    primary, members, warnings = replica_status(cluster)
    if opts.json:
        emit_json(
            {
                "service": cluster.service.name,
                "primary": primary,
                "members": [m.to_dict() for m in members],
                "warnings": warnings,
            }
        )
    else:
        _status_table(cluster.service.name, primary, members)
        for warning in warnings:
            console.print(f"[red]warning:[/red] {warning}")
    if warnings:
        raise typer.Exit(3)


def _status_table(service: str, primary: str, members: list[MemberStatus]) -> None:
    rows = [
        (
            m.name,
            m.role,
            m.slot + ("" if m.slot_active is None else (" (active)" if m.slot_active else " (inactive)")),
            m.state or m.error,
            m.sync_state,
            "-" if m.lag_bytes is None else str(m.lag_bytes),
            "-" if m.lag_seconds is None else f"{m.lag_seconds:.1f}s",
            "paused" if m.replay_paused else "",
        )
        for m in members
    ]
    table(
        f"{service}: primary {primary}",
        ["member", "role", "slot", "state", "sync", "lag bytes", "lag", "replay"],
        rows,
    )


def _patroni_status(opts: Options, cluster: Cluster) -> None:
    from drkit.engines.failover.patroni import status

    seen = status(cluster)
    leader = seen.leader.name if seen.leader else None
    if opts.json:
        emit_json(
            {
                "service": cluster.service.name,
                "via": "patroni",
                "leader": leader,
                "timeline": seen.timeline,
                "paused": seen.paused,
                "members": [m.to_dict() for m in seen.members],
            }
        )
        return
    rows = [
        (
            m.name,
            m.role,
            m.state + (f" ({m.error})" if m.error else ""),
            f"{m.host}:{m.port}",
            "-" if m.timeline is None else str(m.timeline),
            "-" if m.lag_bytes is None else str(m.lag_bytes),
            "-" if m.replay_age is None else f"{m.replay_age:.1f}s",
            "paused" if m.paused else "",
        )
        for m in seen.members
    ]
    title = f"{cluster.service.name} (Patroni): leader {leader or 'none'}, timeline {seen.timeline or '-'}"
    table(
        title, ["member", "role", "state", "address", "timeline", "lag bytes", "last replay", "replay"], rows
    )


def switchover_cmd(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="The standby to promote."),
    service: str = SERVICE,
) -> None:
    """Planned switch to a standby, no acknowledged transaction lost; journaled.

    Example: drkit switchover --to pg2
    """
    from drkit.engines.failover.patroni_switch import build_switchover
    from drkit.engines.failover.switchover import build

    opts = options(ctx)
    ws, cluster = _cluster(opts, service)
    if cluster.replication.patroni is not None:  # Patroni switches; drkit asks and confirms
        _execute(opts, ws, cluster, build_switchover(cluster, to))
        return
    _execute(opts, ws, cluster, build(cluster, to, _restore_command(ws, cluster)))


def failover_cmd(
    ctx: typer.Context,
    to: str = typer.Option(None, "--to", help="The standby to promote (default: the most advanced)."),
    force: bool = typer.Option(False, "--force", help="Beyond the RPO target, or with no fence."),
    since: str = typer.Option(None, "--since", help="When the primary was lost (for the measured RTO)."),
    service: str = SERVICE,
) -> None:
    """The primary is lost: confirm (several probes), check the lag, fence, promote, repoint;
    journaled with the measured RTO and RPO. Exit 1 when refused or failed, 4 on a missed target.

    Example: drkit failover --to pg2
    """
    from drkit.domain.recovery import parse_target_time
    from drkit.engines.failover.failover import build
    from drkit.engines.failover.patroni_switch import build_failover

    opts = options(ctx)
    ws, cluster = _cluster(opts, service)
    lost = parse_target_time(since) if since else None
    if cluster.replication.patroni is not None:  # Patroni elects and fences; drkit confirms
        _execute(opts, ws, cluster, build_failover(cluster, to, since=lost))
        return
    _execute(opts, ws, cluster, build(cluster, to, force=force, since=lost, clock=ws.clock))


def _execute(opts: Options, ws: Workspace, cluster: Cluster, runbook: Runbook) -> None:
    from drkit.cli.recover_cmds import _report, _show_plan, print_step
    from drkit.engines.failover.run import run

    if opts.dry_run:
        steps = [(s.name, s.title, s.destructive) for s in runbook.steps]
        _show_plan(opts, runbook.scenario, steps, runbook.targets)
        return
    journal = run(ws, cluster, runbook, say=_printer(opts), on_step=None if opts.json else print_step)
    if not opts.json:
        console.print(f"journal: {journal.run_id}")
    _report(opts, journal)


def _printer(opts: Options) -> Callable[[str], None]:
    return (lambda _m: None) if opts.json else (lambda m: console.print(f"    {m}"))


def _done(opts: Options, data: dict[str, str], said: str) -> None:
    if opts.json:
        emit_json(data)
    else:
        console.print(said)


def register(app: typer.Typer) -> None:
    app.add_typer(replica, name="replica")
    app.command("switchover")(switchover_cmd)
    app.command("failover")(failover_cmd)
