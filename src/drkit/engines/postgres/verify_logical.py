"""`verify --deep` for a logical backup: restore every dump into a scratch cluster and count.

A throwaway cluster is initdb'd with the service's own binaries (never the live server).
The roles (`globals.sql`) go in first, then each database's `pg_dump -Fc` is fetched,
checked against the SHA-256 recorded for the whole dump, and restored with `pg_restore`
into a database of its name. Every table is counted exactly and compared with the counts
taken at backup time in the very snapshot pg_dump dumped (so they must be equal; estimates,
for big tables, within a tolerance). The scratch cluster is stopped and deleted afterwards.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from drkit.adapters.postgres.counts import exact_counts
from drkit.adapters.postgres.scratch import ScratchCluster, init_scratch
from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status, guard
from drkit.domain.errors import DrkitError, IntegrityError, OperationError
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.core.layout import backup_dir
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.rowcheck import Recorded, compare_counts
from drkit.engines.postgres.verify import scratch_dir
from drkit.infra.ports import free_port
from drkit.infra.proc import last_line
from drkit.runtimes.local_postgres import LocalPostgres

RESTORE_TIMEOUT = 6 * 3600


def verify_logical_deep(ws: Workspace, service: Service, m: Manifest) -> list[CheckResult]:
    scratch = scratch_dir(ws, service, m.backup_id)
    runtime: LocalPostgres | None = None
    results: list[CheckResult] = []
    try:
        cluster = init_scratch(
            scratch / "data",
            port=free_port(),
            bin_dir=service.runtime.bin_dir,
            os_user=service.runtime.os_user,
        )
        runtime = LocalPostgres(
            RuntimeSpec(
                type="local",
                data_dir=str(cluster.data_dir),
                bin_dir=service.runtime.bin_dir,
                port=cluster.port,
                os_user=service.runtime.os_user,
                log_file=str(cluster.data_dir / "scratch.log"),
            )
        )
        runtime.start()
        databases = [str(d) for d in m.details.get("databases", [])]
        results.append(_restore_all(ws, service, m, cluster, databases, scratch))
        results += guard("row counts", lambda: _compare(m, exact_counts(cluster.dsn(), databases)))
    except DrkitError as exc:
        results.append(CheckResult("restore", Status.FAILED, exc.message))
    finally:
        if runtime is not None:
            runtime.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _restore_all(
    ws: Workspace, service: Service, m: Manifest, cluster: ScratchCluster, databases: list[str], scratch: Path
) -> CheckResult:
    globals_sql = _fetch(ws, service, m, "globals.sql", scratch / "globals.sql")
    # The scratch superuser exists already: its CREATE ROLE fails and psql goes on.
    roles = cluster.client(
        "psql", "--dbname=postgres", "--quiet", "--no-psqlrc", f"--file={globals_sql}", timeout=600
    )
    if roles.returncode != 0:  # psql goes on after SQL errors; this one is fatal
        raise OperationError(f"restoring the roles (globals.sql) failed: {last_line(roles.stderr)}")
    ignored: list[str] = []
    for i, db in enumerate(databases):
        dump = _fetch(ws, service, m, f"{db}.dump", scratch / f"db{i}.dump")
        expected = dict(m.details.get("dump_sha256", {})).get(db)
        if expected and _file_sha256(dump) != expected:
            raise IntegrityError(f"the dump of {db} does not match its recorded SHA-256")
        if db != "postgres":
            made = cluster.client(
                "createdb", "--template=template0", "--maintenance-db=postgres", "--", db, timeout=120
            )
            if made.returncode != 0:
                raise IntegrityError(f"cannot create {db} in the scratch cluster: {last_line(made.stderr)}")
        proc = cluster.client(
            "pg_restore", f"--dbname={db}", "--no-tablespaces", str(dump), timeout=RESTORE_TIMEOUT
        )
        dump.unlink()
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln.lower()), "")
            ignored.append(f"{db}: {first.strip() or last_line(proc.stderr)}")
    where = f"restored {len(databases)} database(s) into a scratch cluster on port {cluster.port}"
    if ignored:
        return CheckResult(
            "restore", Status.WARNING, f"{where}; pg_restore reported errors: {'; '.join(ignored)}"
        )
    return CheckResult("restore", Status.OK, where)


PART_RE = r"\.\d{5}(?:\.zst)?(?:\.age)?$"


def _fetch(ws: Workspace, service: Service, m: Manifest, stem: str, dest: Path) -> Path:
    """Concatenate the stem's parts (each checked against the manifest) into `dest`."""
    directory = backup_dir(ws.stack.name, service.name, m.backup_id)
    pattern = re.compile(re.escape(stem) + PART_RE)
    parts = sorted((f for f in m.files if pattern.fullmatch(f.name)), key=lambda f: f.name)
    if not parts:
        raise IntegrityError(f"backup {m.backup_id} holds no {stem} parts")
    with open(dest, "wb") as out:
        for part in parts:
            stored = ws.repo.get(f"{directory}/{part.name}")
            if sha256(stored) != part.sha256:
                raise IntegrityError(f"backup file {part.name} does not match its SHA-256")
            out.write(ws.codec.decode(stored, name=part.name))
    return dest


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _compare(m: Manifest, actual: dict[str, int]) -> list[CheckResult]:
    recorded = m.details.get("row_counts")
    if recorded is None:
        return [
            CheckResult(
                "row counts",
                Status.WARNING,
                f"this backup recorded no row counts (made by an older drkit); {len(actual)} tables restored",
            )
        ]
    counts = {str(k): int(v) for k, v in dict(recorded).items()}
    return compare_counts(Recorded(counts, frozenset(m.details.get("row_counts_estimated", ()))), actual)
