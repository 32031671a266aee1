"""PostgreSQL steps of the recovery scenarios: an emergency dump where the server still
answers, closing and archiving the current WAL before the server stops, saving what its
pg_wal holds and moving the data directory aside (never deleted; infra/aside.py),
restoring in place or into a scratch directory, and checking where a restored server
stands."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from drkit.adapters.postgres.client import connect, service_dsn
from drkit.domain.errors import DrkitError, UsageError
from drkit.domain.recovery import RecoveryTarget, TargetKind, parse_target_time
from drkit.domain.stack import Service, WalMode
from drkit.domain.wal import Segment
from drkit.engines.core.pins import pin
from drkit.engines.postgres.backup import logical_backup
from drkit.engines.postgres.in_place import resumed_facts
from drkit.engines.postgres.restore import RestoreOutcome, RestoreRequest, restore
from drkit.engines.postgres.salvage import salvage_wal
from drkit.engines.postgres.switch_wal import switch_wal_and_wait
from drkit.engines.postgres.wal.stream import flush_spool
from drkit.engines.runbooks.model import Step, StepContext, StepResult
from drkit.infra.aside import kept, move_aside
from drkit.runtimes.local_postgres import LocalPostgres

ARCHIVE_WAIT = 120.0


def pg_service(ctx: StepContext) -> Service:
    return ctx.ws.stack.services[str(ctx.parameters["service"])]


def target_of(parameters: dict[str, object]) -> RecoveryTarget:
    when = parameters.get("target_time")
    if when:
        return RecoveryTarget(TargetKind.TIME, time=parse_target_time(str(when)))
    return RecoveryTarget()


def answers(service: Service) -> bool:
    try:
        with connect(service_dsn(service, connect_timeout=5)) as conn:
            conn.execute("select 1")
    except DrkitError:
        return False
    return True


def state(service: Service, port: int | None = None) -> tuple[bool, str | None] | None:
    """(in recovery, last replay or current LSN) of a server that answers; None otherwise."""
    overrides = {"host": "127.0.0.1", "port": port} if port else {}
    try:
        with connect(service_dsn(service, connect_timeout=5, **overrides)) as conn:
            row = conn.execute(
                "select pg_is_in_recovery(), case when pg_is_in_recovery() "
                "then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end::text"
            ).fetchone()
    except DrkitError:
        return None
    return (bool(row[0]), row[1]) if row else None


def on(service: str, *steps: Step) -> list[Step]:
    """These steps act on `service` (the journal and the reports say so)."""
    return [replace(s, service=service) for s in steps]


def emergency_dump_step() -> Step:
    def run(ctx: StepContext) -> StepResult:
        service = pg_service(ctx)
        if not answers(service):
            return StepResult("the server does not answer: no emergency dump possible")
        result = logical_backup(ctx.ws, service)
        # incident evidence: pinned, so the next prune does not remove it (`backups keep --release`)
        scenario = ctx.parameters.get("scenario", "db-corruption")
        made = pin(
            ctx.ws, result.manifest, reason=f"emergency dump of the {scenario} recovery of {service.name}"
        )
        return StepResult(
            f"logical backup {result.manifest.backup_id} taken ({result.seconds:.1f}s): "
            f"what the server still had, restorable table by table; pinned ({made.reason})",
            {"emergency_backup": result.manifest.backup_id},
        )

    return Step(
        "emergency-dump",
        "an emergency logical dump of every database, where the server still answers",
        run,
        critical=False,
        timeout=6 * 3600,
    )


def stop_postgres_step() -> Step:
    """Close the current WAL segment and wait until it is archived (or flush the receiver's
    spool), so nothing committed is lost, then stop the server through its runtime."""

    def run(ctx: StepContext) -> StepResult:
        service = pg_service(ctx)
        closed = close_current_wal(ctx, service)
        LocalPostgres(service.runtime).stop()
        return StepResult(f"{closed}; stopped")

    def stopped(ctx: StepContext) -> str | None:
        return "still running" if LocalPostgres(pg_service(ctx).runtime).is_running() else None

    return Step(
        "stop-postgres", "archive the current WAL, then stop PostgreSQL", run, destructive=True, after=stopped
    )


def close_current_wal(ctx: StepContext, service: Service) -> str:
    policy = service.postgres
    if policy and policy.wal_mode is WalMode.STREAM:
        flushed = flush_spool(ctx.ws, service)
        return f"flushed {len(flushed)} streamed segment(s) into the archive"
    if not answers(service):
        return "the server does not answer: what its pg_wal holds is saved before it is moved aside"
    switched = switch_wal_and_wait(ctx.ws, service, timeout=ARCHIVE_WAIT, say=ctx.say)
    return f"WAL up to {switched.segment} archived"


def move_aside_step(data_dir: str, aside: str) -> Step:
    """Save what the stopped server's pg_wal holds that the archive lacks, then move the data
    directory aside under the name the plan chose (`-2`, ... if it is taken)."""
    label, stamp = _aside_name(data_dir, aside)

    def run(ctx: StepContext) -> StepResult:
        service = pg_service(ctx)
        wal = str(ctx.parameters.get("wal", "")).split("..")[0]
        since = Segment.parse(wal) if re.fullmatch(r"[0-9A-F]{24}", wal) else None
        saved = salvage_wal(
            ctx.ws, service, Path(data_dir), since=since, config_hint=ctx.ws.stack.source_path
        )
        moved = move_aside(Path(data_dir), label, now=stamp)
        return StepResult(
            f"old pg_wal: {saved.describe()}; {data_dir} is now {moved.path} (kept; delete it yourself "
            "once done)",
            {"moved_aside_to": str(moved.path)},
        )

    def present(ctx: StepContext) -> str | None:
        return None if Path(data_dir).exists() else f"{data_dir} does not exist"

    def moved(ctx: StepContext) -> str | None:
        if Path(data_dir).exists():
            return f"{data_dir} is still there"
        base = Path(aside).name
        if any(k.path.name.startswith(base) for k in kept(Path(data_dir))):
            return None
        return f"no {aside} beside it"

    return Step(
        "move-aside",
        f"save what its pg_wal holds, then move the data directory {data_dir} aside to {aside} "
        "(never deleted)",
        run,
        destructive=True,
        before=present,
        after=moved,
    )


def _aside_name(data_dir: str, aside: str) -> tuple[str, datetime]:
    """The label and moment of a planned aside name (`DATA.drkit-corrupt-20261130T031500Z`)."""
    found = re.search(r"\.(?:drkit-)?([a-z-]+)-(\d{8}T\d{6}Z)$", aside)
    if not found or not aside.startswith(f"{data_dir}."):
        raise UsageError(f"cannot read the planned aside name {aside!r}")
    return found.group(1), datetime.strptime(found.group(2), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def aside_name(data_dir: str, label: str, now: datetime) -> str:
    """The name a plan records for its data directory's aside."""
    return f"{data_dir}.drkit-{label}-{now:%Y%m%dT%H%M%SZ}"


def restore_in_place_step(backup_id: str, target: RecoveryTarget) -> Step:
    def run(ctx: StepContext) -> StepResult:
        service = pg_service(ctx)
        request = RestoreRequest(target=target, backup_id=backup_id, in_place=True)
        argv = list(ctx.parameters["drkit_argv"])
        outcome = restore(ctx.ws, service, request, drkit_argv=argv, report=ctx.progress)
        return StepResult(_described(outcome), _facts(outcome))

    def promoted(ctx: StepContext) -> str | None:
        now = state(pg_service(ctx))
        if now is None:
            return "the server does not answer"
        return "still in recovery" if now[0] else None

    def settle(ctx: StepContext) -> StepResult:
        """Resumed after a kill once it had finished: its ledger holds what it reached."""
        facts = resumed_facts(ctx.ws, pg_service(ctx)) or {}
        return StepResult("", {k: v for k, v in facts.items() if v})

    return Step(
        "restore",
        f"restore base backup {backup_id} in place with WAL to {target.describe()}, then start",
        run,
        destructive=True,
        after=promoted,
        settle=settle,
        timeout=24 * 3600,
    )


def restore_scratch_step(backup_id: str, target: RecoveryTarget, scratch: str, port: int) -> Step:
    """PITR into a scratch directory beside production, left running on a loopback port."""

    def run(ctx: StepContext) -> StepResult:
        service = pg_service(ctx)
        if state(service, port) is not None:
            return StepResult(f"the scratch copy already answers on port {port}")
        request = RestoreRequest(
            target=target, backup_id=backup_id, to=Path(scratch), keep_running=True, port=port
        )
        argv = list(ctx.parameters["drkit_argv"])
        outcome = restore(ctx.ws, service, request, drkit_argv=argv, report=ctx.progress)
        return StepResult(_described(outcome), _facts(outcome))

    def answering(ctx: StepContext) -> str | None:
        now = state(pg_service(ctx), port)
        return None if now is not None and not now[0] else f"the scratch copy on port {port} is not ready"

    return Step(
        "pitr-scratch",
        f"restore base backup {backup_id} with WAL to {target.describe()} into {scratch} (port {port})",
        run,
        after=answering,
        timeout=24 * 3600,
    )


def stop_scratch_step(scratch: str, port: int) -> Step:
    def run(ctx: StepContext) -> StepResult:
        spec = pg_service(ctx).runtime
        local = LocalPostgres(
            type(spec)(type="local", data_dir=scratch, bin_dir=spec.bin_dir, port=port, os_user=spec.os_user)
        )
        local.stop()
        return StepResult(f"scratch copy stopped; its directory {scratch} is kept")

    return Step("stop-scratch", f"stop the scratch copy in {scratch}", run, critical=False, timeout=300)


def _described(outcome: RestoreOutcome) -> str:
    reached = outcome.reached_time.isoformat() if outcome.reached_time else "no transaction replayed"
    aside = f"; previous data kept at {outcome.moved_aside}" if outcome.moved_aside else ""
    return (
        f"restored {outcome.backup_id} to {outcome.target} in {outcome.seconds:.1f}s: "
        f"LSN {outcome.reached_lsn}, last transaction {reached}, timeline {outcome.timeline}{aside}"
    )


def _facts(outcome: RestoreOutcome) -> dict[str, object]:
    return {
        "reached_lsn": outcome.reached_lsn,
        "reached_time": outcome.reached_time.isoformat() if outcome.reached_time else None,
        "timeline": outcome.timeline,
        "postgres_healthy_at": outcome.finished_at.isoformat(),
    }
