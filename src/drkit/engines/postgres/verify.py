"""Verify base backups: the WAL a base backup needs (present, and every file re-read and
checked against its recorded hash: wal_check.py), and (`deep`) its files against the
server's backup_manifest (pg_verifybackup), then a real restore into a throwaway instance:
pg_amcheck over every database, and row counts compared with those recorded."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from drkit.adapters.postgres.amcheck import run_amcheck, run_verifybackup
from drkit.adapters.postgres.client import service_dsn
from drkit.adapters.postgres.counts import exact_counts
from drkit.adapters.postgres.tarindex import members_from_json
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status, guard
from drkit.domain.errors import Cancelled, DecryptionError, DrkitError, IntegrityError, RepositoryError
from drkit.domain.progress import SILENT, Progress
from drkit.domain.recovery import RecoveryTarget, TargetKind
from drkit.domain.stack import RuntimeSpec, Service
from drkit.domain.wal import Lsn, Segment, TimelineSpan, segment_on_path
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.types import NotRead
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.backup import TAR_INDEX
from drkit.engines.postgres.plan import ArchiveView, choose_line
from drkit.engines.postgres.restore import RestoreRequest, restore
from drkit.engines.postgres.rowcheck import Recorded, compare_counts
from drkit.engines.postgres.tar_restore import read_index, restore_parts
from drkit.engines.postgres.wal.archive import (
    ChainReport,
    archive_for,
    check_chain,
    check_path,
    timeline_paths,
)
from drkit.engines.postgres.wal_check import RehashReport, WalRehash
from drkit.infra.ownership import chown_tree
from drkit.runtimes.local_postgres import LocalPostgres


def verify_wal(
    ws: Workspace, service: Service, m: Manifest, rehash: WalRehash | None = None
) -> list[CheckResult]:
    """The WAL the backup needs to be consistent, then, along the newest timeline that
    descends from it, the WAL a restore to *latest* replays: every one of those files is
    re-read and checked (its zstd frame, its recorded SHA-256) as a restore will read it.
    How far PITR from the backup reaches is reported; a missing or damaged segment the
    backup itself needs, or a damaged one on the way to latest, fails."""
    pg = m.require_postgres()
    start = Segment.containing(Lsn.parse(pg.start_lsn), pg.timeline, pg.wal_segment_size)
    stop = Segment.containing(Lsn.parse(pg.stop_lsn), pg.timeline, pg.wal_segment_size)
    archive = archive_for(ws, service)
    names = archive.names()
    report = check_chain(names, start, stop)
    if report.missing is not None or report.last is None or report.last.number < stop.number:
        gone = report.missing or (report.last.next() if report.last else start)
        return [
            CheckResult(
                "wal",
                Status.FAILED,
                f"WAL segment {gone.name} is missing (the backup needs {start.name}..{stop.name})",
            )
        ]
    own = [Segment(pg.timeline, n, start.size).name for n in range(start.number, stop.number + 1)]
    try:
        view = ArchiveView(frozenset(names), timeline_paths(archive, names))
        reach = pitr_reach(view, m, start)
    except DecryptionError as exc:  # verifying without the key: the backup's own WAL is there
        reach = Reach(f"timeline histories not read ({exc.message})", ())
    except (IntegrityError, RepositoryError) as exc:  # a damaged history: every plan stops on it
        return [CheckResult("wal", Status.FAILED, f"WAL {start.name}..{stop.name} archived; {exc.message}")]
    except DrkitError as exc:
        reach = Reach(exc.message, (), failed=True)
    rehash = rehash or WalRehash(archive, pg.wal_segment_size)
    found = rehash.check([*own, *reach.names])
    return _wal_results(found, own, stop, f"WAL {start.name}..{stop.name}", reach)


def _wal_results(
    found: RehashReport, own: list[str], stop: Segment, span: str, reach: Reach
) -> list[CheckResult]:
    results: list[CheckResult] = []
    if found.unread:
        results.append(
            NotRead(
                "wal content",
                Status.WARNING,
                f"{len(found.unread)} WAL file(s) encrypted and no age identity here: present, "
                f"not read (e.g. {found.unread[0]})",
                critical=False,
            )
        )
    if found.damaged:
        bad = found.damaged[0]
        if bad.name in own or Segment.parse(bad.name[:24], stop.size).number <= stop.number:
            why = "the backup cannot be restored"
        else:
            why = (
                f"a restore from this backup stops before {bad.name[:24]} (a later target, or latest, fails)"
            )
        more = f" (and {len(found.damaged) - 1} more)" if len(found.damaged) > 1 else ""
        return [CheckResult("wal", Status.FAILED, f"{bad.problem}{more}: {why}"), *results]
    status = Status.WARNING if reach.failed else Status.OK
    note = f"; {found.unhashed} with no recorded hash (zstd frame and size only)" if found.unhashed else ""
    checked = f"{found.checked} WAL file(s) re-read and intact{note}"
    return [CheckResult("wal", status, f"{span} archived; {checked}; {reach.detail}"), *results]


@dataclass(frozen=True)
class Reach:
    """How far PITR from a backup reaches, and the WAL files a restore to latest reads."""

    detail: str
    names: tuple[str, ...]
    failed: bool = False


def verify_tar_index(ws: Workspace, service: Service, m: Manifest) -> CheckResult:
    """The tar index a restore reads first: listed in the manifest, intact, parseable, and
    within the parts (its SHA-256 was checked with the files; this decodes and parses it)."""
    directory = backup_dir(ws.stack.name, service.name, m.backup_id)
    try:
        members = read_index(ws.repo, ws.codec, directory, m, TAR_INDEX + ws.codec.suffix)
    except DrkitError as exc:
        return CheckResult("tar index", Status.FAILED, exc.message)
    raw = sum(f.raw_size or 0 for f in m.files if f.name.startswith("base."))
    end = max((e.offset + e.size for e in members), default=0)
    if raw and end > raw:
        return CheckResult("tar index", Status.FAILED, f"the index reaches byte {end}; the parts hold {raw}")
    return CheckResult("tar index", Status.OK, f"{len(members)} members, within the parts")


def pitr_reach(view: ArchiveView, m: Manifest, start: Segment) -> Reach:
    """How far the archived WAL carries this backup, following timeline switches."""
    timeline, _ = choose_line([m], view, None)
    path = view.path(timeline)
    report = check_path(set(view.names), path, start)
    line = "timeline " + " -> ".join(str(s.timeline) for s in path if _after(s, start))
    reach = report.last.name if report.last else start.name
    names = _on_path(path, start, report)
    if report.missing is not None:
        return Reach(
            f"PITR reaches {reach} ({line}); {report.missing.name} is missing, nothing later is reachable",
            names,
        )
    return Reach(f"PITR reaches {reach} ({line}){' (partial)' if report.partial_tail else ''}", names)


def _on_path(path: tuple[TimelineSpan, ...], start: Segment, report: ChainReport) -> tuple[str, ...]:
    """The files recovery reads from `start` to the end of the chain, in order."""
    if report.last is None:
        return ()
    names = [segment_on_path(path, n, start.size).name for n in range(start.number, report.last.number + 1)]
    if report.partial_tail:
        names[-1] += ".partial"
    return tuple(names)


def _after(span: TimelineSpan, start: Segment) -> bool:
    return span.end is None or span.end >= start.start


def verify_deep(
    ws: Workspace, service: Service, m: Manifest, drkit_argv: list[str], progress: Progress = SILENT
) -> list[CheckResult]:
    """pg_verifybackup on the extracted files, then a restore into a throwaway directory
    (archiving off), started: pg_amcheck on every database and the row counts compared."""
    scratch = scratch_dir(ws, service, m.backup_id)
    try:
        progress.step(f"extract {m.backup_id} as it is and check it with pg_verifybackup")
        results = [verify_plain(ws, service, m, scratch / "plain")]
        results += _restore_and_check(ws, service, m, scratch / "data", drkit_argv, progress)
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
    ws: Workspace, service: Service, m: Manifest, target: Path, drkit_argv: list[str], progress: Progress
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
        progress.step(f"restore {m.backup_id} into a throwaway instance")
        outcome = restore(ws, service, request, drkit_argv=drkit_argv, report=progress)
        results.append(
            CheckResult(
                "restore",
                Status.OK,
                f"restored and started in {outcome.seconds:.1f}s, consistent at {outcome.reached_lsn}",
            )
        )
        dsn = service_dsn(service, host="127.0.0.1", port=outcome.port)
        progress.step("pg_amcheck on every database of the restored copy, then its row counts")
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
