"""`verify --deep` for a logical backup: restore every dump into a scratch cluster and count.

A throwaway cluster is initdb'd with the service's own binaries (never the live server).
The roles (`globals.sql`) go in first, then each database's `pg_dump -Fc` is fetched,
checked against the SHA-256 recorded for the whole dump, and restored into a database of
its name by the same call, with the same rules, as `restore postgres --database`
(`restore_dump`: `pg_restore --exit-on-error`; here also `--no-tablespaces`, since the
scratch cluster has none): a statement that fails fails the verify, and the backup is not
recorded as verified. Every table is counted exactly and compared with the counts
taken at backup time in the very snapshot pg_dump dumped (so they must be equal; estimates,
for big tables, within a tolerance). The scratch cluster is stopped and deleted afterwards.
"""

from __future__ import annotations

import re
import shutil

from drkit.adapters.postgres.counts import exact_counts
from drkit.adapters.postgres.pg_restore import restore_dump
from drkit.adapters.postgres.scratch import ScratchCluster, init_scratch
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status, guard
from drkit.domain.errors import DrkitError, IntegrityError, OperationError, ToolError
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.logical_restore import PART_RE, fetched, fetched_dump
from drkit.engines.postgres.rowcheck import Recorded, compare_counts
from drkit.engines.postgres.verify import scratch_dir
from drkit.infra.ports import free_port
from drkit.infra.proc import last_line
from drkit.runtimes.local_postgres import LocalPostgres

RESTORE_TIMEOUT = 6 * 3600


def verify_logical_layout(m: Manifest) -> CheckResult:
    """What a restore of a logical backup looks for besides the stored bytes (which `verify`
    re-hashes): the databases it lists, each with its dump's parts, and the roles' file."""
    databases = [str(d) for d in m.details.get("databases", [])]
    if not databases:
        return CheckResult("layout", Status.FAILED, "the backup lists no database dump")
    names = [f.name for f in m.files]
    for stem in [*(f"{db}.dump" for db in databases), "globals.sql"]:
        pattern = re.compile(re.escape(stem) + PART_RE)
        if not any(pattern.fullmatch(n) for n in names):
            return CheckResult("layout", Status.FAILED, f"the manifest lists no part of {stem}")
    return CheckResult("layout", Status.OK, f"dumps of {', '.join(databases)} and globals.sql")


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
        restored = _restore_all(ws, m, cluster, databases)
        results.append(restored)
        if restored.status is Status.FAILED:
            results.append(CheckResult("row counts", Status.WARNING, "not compared: the restore failed"))
        else:
            results += guard("row counts", lambda: _compare(m, exact_counts(cluster.dsn(), databases)))
    except DrkitError as exc:
        results.append(CheckResult("restore", Status.FAILED, exc.message))
    finally:
        if runtime is not None:
            runtime.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _restore_all(ws: Workspace, m: Manifest, cluster: ScratchCluster, databases: list[str]) -> CheckResult:
    """globals.sql, then every database's dump with the real restore's pg_restore rules: a
    dump that `restore postgres --database` cannot load fails here too."""
    with fetched(ws, m, "globals.sql", whole_sha256=None) as globals_sql:
        # The scratch superuser exists already: its CREATE ROLE fails and psql goes on.
        roles = cluster.client(
            "psql", "--dbname=postgres", "--quiet", "--no-psqlrc", f"--file={globals_sql}", timeout=600
        )
    if roles.returncode != 0:  # psql goes on after SQL errors; this one is fatal
        raise OperationError(f"restoring the roles (globals.sql) failed: {last_line(roles.stderr)}")
    failed: list[str] = []
    for db in databases:
        if db != "postgres":
            made = cluster.client(
                "createdb", "--template=template0", "--maintenance-db=postgres", "--", db, timeout=120
            )
            if made.returncode != 0:
                raise IntegrityError(f"cannot create {db} in the scratch cluster: {last_line(made.stderr)}")
        with fetched_dump(ws, m, db) as dump:
            try:
                restore_dump(
                    cluster.dsn(db), dump, cluster.bin_dir, no_tablespaces=True, timeout=RESTORE_TIMEOUT
                )
            except ToolError as exc:
                failed.append(f"{db}: {exc.message}")
    where = f"{len(databases)} database(s) into a scratch cluster on port {cluster.port}"
    if failed:
        return CheckResult(
            "restore",
            Status.FAILED,
            f"restoring {where} failed, as `drkit restore postgres --database` would: {'; '.join(failed)}",
        )
    return CheckResult("restore", Status.OK, f"restored {where} (pg_restore --exit-on-error)")


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
