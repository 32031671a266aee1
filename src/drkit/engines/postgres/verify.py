"""Verify base backups: the WAL a base backup needs, and (`deep`) its files against the
server's backup_manifest (pg_verifybackup), then a real restore into a throwaway instance:
pg_amcheck over every database, and row counts compared with those recorded."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from drkit.adapters.postgres.amcheck import run_amcheck, run_verifybackup
from drkit.adapters.postgres.client import service_dsn
from drkit.adapters.postgres.counts import exact_counts
from drkit.adapters.postgres.tarindex import members_from_json
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status, guard
from drkit.domain.errors import Cancelled, DecryptionError, DrkitError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.stack import RuntimeSpec, Service
from drkit.domain.wal import Lsn, Segment, TimelineSpan
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.backup import TAR_INDEX
from drkit.engines.postgres.plan import ArchiveView, choose_line
from drkit.engines.postgres.restore import RestoreRequest, restore
from drkit.engines.postgres.rowcheck import Recorded, compare_counts
from drkit.engines.postgres.tar_restore import restore_parts
from drkit.engines.postgres.wal.archive import archive_for, check_chain, check_path, timeline_paths
from drkit.infra.ownership import chown_tree
from drkit.runtimes.local_postgres import LocalPostgres


def verify_wal(ws: Workspace, service: Service, m: Manifest) -> CheckResult:
    """The WAL the backup needs to be consistent; then, along the newest timeline that
    descends from it, how far PITR from it can go (reported, not a failure of the backup)."""
    pg = m.require_postgres()
    start = Segment.containing(Lsn.parse(pg.start_lsn), pg.timeline, pg.wal_segment_size)
    stop = Segment.containing(Lsn.parse(pg.stop_lsn), pg.timeline, pg.wal_segment_size)
    archive = archive_for(ws, service)
    names = archive.names()
    report = check_chain(names, start, stop)
    if report.missing is not None or report.last is None or report.last.number < stop.number:
        gone = report.missing or (report.last.next() if report.last else start)
        return CheckResult(
            "wal",
            Status.FAILED,
            f"WAL segment {gone.name} is missing (the backup needs {start.name}..{stop.name})",
        )
    try:
        view = ArchiveView(frozenset(names), timeline_paths(archive, names))
        reach = pitr_reach(view, m, start)
    except DecryptionError as exc:  # verifying without the key: the backup's own WAL is there
        reach = f"timeline histories not read ({exc.message})"
    except DrkitError as exc:
        return CheckResult("wal", Status.WARNING, f"WAL {start.name}..{stop.name} archived; {exc.message}")
    return CheckResult("wal", Status.OK, f"WAL {start.name}..{stop.name} archived; {reach}")


def pitr_reach(view: ArchiveView, m: Manifest, start: Segment) -> str:
    """How far the archived WAL carries this backup, following timeline switches."""
    timeline, _ = choose_line([m], view, None)
    path = view.path(timeline)
    report = check_path(set(view.names), path, start)
    line = "timeline " + " -> ".join(str(s.timeline) for s in path if _after(s, start))
    reach = report.last.name if report.last else start.name
    if report.missing is not None:
        return f"PITR reaches {reach} ({line}); {report.missing.name} is missing, nothing later is reachable"
    return f"PITR reaches {reach} ({line}){' (partial)' if report.partial_tail else ''}"


def _after(span: TimelineSpan, start: Segment) -> bool:
    return span.end is None or span.end >= start.start


def verify_deep(ws: Workspace, service: Service, m: Manifest, drkit_argv: list[str]) -> list[CheckResult]:
    """pg_verifybackup on the extracted files, then a restore into a throwaway directory
    (archiving off), started: pg_amcheck on every database and the row counts compared."""
    scratch = scratch_dir(ws, service, m.backup_id)
    try:
        results = [verify_plain(ws, service, m, scratch / "plain")]
        results += _restore_and_check(ws, service, m, scratch / "data", drkit_argv)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def scratch_dir(ws: Workspace, service: Service, stem: str) -> Path:
    root = ws.state_dir / "verify"
    root.mkdir(parents=True, exist_ok=True)
    chown_tree(root, service.runtime.os_user)
    scratch = Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=root))
    chown_tree(scratch, service.runtime.os_user)
    return scratch


def verify_plain(ws: Workspace, service: Service, m: Manifest, dest: Path) -> CheckResult:
    """Extract the tar stream as it is and check it against the backup_manifest the server
    wrote into it (a restored, started copy has changed files: it cannot be checked)."""
    directory = backup_dir(ws.stack.name, service.name, m.backup_id)
    index_file = m.file(str(m.details.get("tar_index", TAR_INDEX + ws.codec.suffix)))
    try:
        raw_index = ws.codec.decode(ws.repo.get(f"{directory}/{index_file.name}"), name=index_file.name)
        parts = [f for f in m.files if f.name.startswith("base.")]
        policy = service.postgres
        restore_parts(
            ws.repo,
            ws.codec,
            directory,
            parts,
            members_from_json(raw_index),
            dest,
            parallel=policy.parallel if policy else 2,
        )
        if not (dest / "backup_manifest").is_file():
            return CheckResult("pg_verifybackup", Status.WARNING, "the backup holds no backup_manifest")
        found = run_verifybackup(service.runtime.bin_dir, dest)
    except DrkitError as exc:
        return CheckResult("pg_verifybackup", Status.FAILED, exc.message)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return CheckResult("pg_verifybackup", found.status, found.detail)


def _restore_and_check(
    ws: Workspace, service: Service, m: Manifest, target: Path, drkit_argv: list[str]
) -> list[CheckResult]:
    pg = m.require_postgres()
    request = RestoreRequest(
        target=RecoveryTarget(TargetKind.IMMEDIATE),
        backup_id=m.backup_id,
        to=target,
        keep_running=True,
        timeout=1800,
    )
    results: list[CheckResult] = []
    outcome = None
    try:
        outcome = restore(ws, service, request, drkit_argv=drkit_argv)
        results.append(
            CheckResult(
                "restore",
                Status.OK,
                f"restored and started in {outcome.seconds:.1f}s, consistent at {outcome.reached_lsn}",
            )
        )
        dsn = service_dsn(service, host="127.0.0.1", port=outcome.port)
        results += guard("amcheck", lambda: [amcheck(service, dsn)])
        recorded = Recorded(
            pg.row_counts,
            frozenset(m.details.get("row_counts_estimated", ())),
            settled=bool(m.details.get("row_counts_exact", True)),
        )
        databases = pg.databases or ["postgres"]
        results += guard("row counts", lambda: compare_counts(recorded, exact_counts(dsn, databases)))
    except Cancelled:
        raise  # interrupted (SIGINT/SIGTERM): the restore cleaned up and says so; not a verdict
    except DrkitError as exc:
        results.append(CheckResult("restore", Status.FAILED, exc.message))
    finally:
        if outcome is not None:
            LocalPostgres(
                RuntimeSpec(
                    type="local",
                    data_dir=str(target),
                    bin_dir=service.runtime.bin_dir,
                    os_user=service.runtime.os_user,
                )
            ).stop()
    return results


def amcheck(service: Service, dsn: str) -> CheckResult:
    policy = service.postgres
    found = run_amcheck(service.runtime.bin_dir, dsn, jobs=policy.parallel if policy else 1)
    return CheckResult("amcheck", found.status, found.detail)
