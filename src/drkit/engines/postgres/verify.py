"""Verify backups: every stored file against its manifest hash, the WAL a base backup needs,
and (`deep`) a real restore into a throwaway instance compared with recorded row counts."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from drkit.adapters.postgres.client import service_dsn
from drkit.adapters.postgres.counts import snapshot_counts
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import DecryptionError, DrkitError
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.stack import RuntimeSpec, Service
from drkit.domain.wal import Lsn, Segment, TimelineSpan
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.plan import ArchiveView, choose_line
from drkit.engines.postgres.restore import RestoreRequest, restore
from drkit.engines.postgres.wal.archive import check_chain, check_path, timeline_paths
from drkit.engines.postgres.wal.stream import archive_for
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
    """Restore into a throwaway directory (archiving off), start it, compare row counts."""
    pg = m.require_postgres()
    scratch_root = ws.state_dir / "verify"
    scratch_root.mkdir(parents=True, exist_ok=True)
    chown_tree(scratch_root, service.runtime.os_user)
    scratch = Path(tempfile.mkdtemp(prefix=f"{m.backup_id}-", dir=scratch_root))
    chown_tree(scratch, service.runtime.os_user)
    target = scratch / "data"
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
        _xid, counts = snapshot_counts(dsn, pg.databases or ["postgres"])
        results.extend(compare_counts(pg.row_counts, counts, bool(m.details.get("row_counts_exact", True))))
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
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def compare_counts(expected: dict[str, int], actual: dict[str, int], exact: bool) -> list[CheckResult]:
    results = []
    differ = [t for t in sorted(expected) if actual.get(t) != expected[t]]
    extra = sorted(set(actual) - set(expected))
    if not differ and not extra:
        total = sum(expected.values())
        return [CheckResult("row counts", Status.OK, f"{len(expected)} tables, {total} rows as recorded")]
    status = Status.FAILED if exact else Status.WARNING
    for t in differ:
        note = "" if exact else " (writes ran during the backup; counts were taken at its end)"
        results.append(
            CheckResult(
                f"rows {t}", status, f"restored {actual.get(t, 'no table')} != recorded {expected[t]}{note}"
            )
        )
    for t in extra:
        results.append(
            CheckResult(f"rows {t}", status, "table exists in the restore but not in the manifest")
        )
    return results
