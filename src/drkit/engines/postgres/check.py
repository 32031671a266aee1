"""`drkit check` for PostgreSQL: is everything in place for backups and PITR to work?

Checks collect results, they never raise (Barman's CheckStrategy): one failing check does
not hide the others.
"""

from __future__ import annotations

import re
from datetime import timedelta

from drkit.adapters.postgres.client import archive_ready_count, connect, dsn_param, rows, service_dsn
from drkit.adapters.postgres.server import ServerInfo, server_info
from drkit.adapters.postgres.toolhost import tool_host
from drkit.adapters.postgres.tools import major, tool_version
from drkit.domain.checks import CheckResult, Status, guard
from drkit.domain.errors import DrkitError
from drkit.domain.stack import Service, WalMode
from drkit.engines.core.workspace import Workspace
from drkit.engines.postgres.check_archive import archive_proof
from drkit.engines.postgres.check_compose import spool_mounted
from drkit.engines.postgres.check_data import check_foreign
from drkit.engines.postgres.check_incremental import check_incremental
from drkit.engines.postgres.wal.archive import archive_for
from drkit.engines.postgres.wal.identity import identity_check

OK, WARN, FAIL = Status.OK, Status.WARNING, Status.FAILED


def check_repository(ws: Workspace) -> list[CheckResult]:
    def probe() -> list[CheckResult]:
        ws.repo.check_writable()
        return [CheckResult("repository", OK, f"{ws.repo.location} is writable")]

    return guard("repository", probe)


def check_postgres(ws: Workspace, service: Service) -> list[CheckResult]:
    dsn = service_dsn(service)
    try:
        info = server_info(dsn)
    except DrkitError as exc:
        return [
            CheckResult(f"{service.name}: connect", FAIL, exc.message + connect_fix(service, exc.message))
        ]
    results = [CheckResult(f"{service.name}: connect", OK, info.version.split(",")[0])]
    results += _settings(service, info)
    results += guard(f"{service.name}: replication", lambda: _replication(service))
    policy = service.postgres
    if policy is not None and policy.wal_mode is WalMode.STREAM:
        results += guard(f"{service.name}: wal stream", lambda: _stream(service, dsn))
        if service.runtime.type == "compose":
            results += guard(f"{service.name}: wal spool", lambda: [spool_mounted(ws, service)])
    if service.runtime.type != "compose" or not service.runtime.volume:
        results += guard(f"{service.name}: archiving", lambda: _archiving(service, dsn, info))
    results += guard(f"{service.name}: PGDATA", lambda: [check_foreign(service)])
    results += guard(f"{service.name}: archiving proof", lambda: archive_proof(ws, service, info))
    results += guard(f"{service.name}: tools", lambda: _tools(service, info))
    results += guard(f"{service.name}: WAL archive identity", lambda: [_archive_identity(ws, service, info)])
    results += guard(f"{service.name}: incremental backups", lambda: [check_incremental(service, info)])
    return results


def _archive_identity(ws: Workspace, service: Service, info: ServerInfo) -> CheckResult:
    name, major = f"{service.name}: WAL archive identity", info.version_num // 10000
    return identity_check(archive_for(ws, service).guard, name, info.system_identifier, major)


def _settings(service: Service, info: ServerInfo) -> list[CheckResult]:
    s, n = info.settings, service.name
    out = []
    level = s.get("wal_level", "")
    out.append(
        CheckResult(
            f"{n}: wal_level",
            OK if level in ("replica", "logical") else FAIL,
            f"wal_level = {level}"
            + ("" if level in ("replica", "logical") else " (needs replica for base backups and PITR)"),
        )
    )
    senders = int(s.get("max_wal_senders", "0") or 0)
    out.append(
        CheckResult(
            f"{n}: max_wal_senders",
            OK if senders >= 2 else FAIL,
            f"max_wal_senders = {senders} (pg_basebackup and pg_receivewal each use one)",
        )
    )
    checksums = s.get("data_checksums") == "on"
    out.append(
        CheckResult(
            f"{n}: data checksums",
            OK if checksums else WARN,
            "on" if checksums else "off: silent corruption goes unnoticed",
            critical=False,
        )
    )
    return out


def connect_fix(service: Service, message: str) -> str:
    """What to change when drkit cannot reach a compose-run PostgreSQL (nself publishes it on
    127.0.0.1 only with POSTGRES_EXPOSE_PORT=true, or auto with ENV=dev)."""
    runtime = service.runtime
    if runtime.type != "compose":
        return ""
    host = dsn_param(service.dsn or "", "host")
    container = runtime.container or "the container"
    if host in ("127.0.0.1", "localhost", "::1", ""):
        return (
            f". Is the port published? nself publishes PostgreSQL on 127.0.0.1 only with "
            f"POSTGRES_EXPOSE_PORT=true (or auto with ENV=dev): set it in .env and run "
            f"`nself build && nself restart`, or reach it through {container} "
            f"(dsn host={container} port=5432)"
        )
    publish = (
        "publish the port on loopback instead: POSTGRES_EXPOSE_PORT=true in .env, "
        "`nself build && nself restart`, and dsn host=127.0.0.1 port=$POSTGRES_PORT"
    )
    if host == runtime.container and ("translate host name" in message or "not known" in message):
        return (
            f". {host} is the container's name on the compose network; drkit dials the address "
            f"`docker inspect {host}` gives, and docker gave none: is the container running, and "
            "does drkit reach the right docker (DOCKER_HOST)? Or " + publish
        )
    if host == runtime.container:
        return (
            f". drkit dialed {host}'s address on its compose network (from `docker inspect`); "
            "a Linux host reaches it through the network's bridge, Docker Desktop and rootless "
            "Docker do not: " + publish
        )
    if "translate host name" in message or "Name or service not known" in message:
        return (
            f". {host} is a name this host cannot resolve: name the container itself "
            f"(dsn host={container}: drkit finds its address with docker), or " + publish
        )
    return ""


def _replication(service: Service) -> list[CheckResult]:
    """pg_basebackup and pg_receivewal open replication connections, which pg_hba.conf allows
    separately from ordinary ones (the postgres image allows them only from inside the container).
    For compose, drkit runs those tools inside the container: refused from this host but
    allowed in there is fine."""
    name, user = f"{service.name}: replication", dsn_param(service.dsn or "", "user") or "postgres"
    results = _replication_from_host(service, name, user)
    if results[0].status is FAIL and service.runtime.type == "compose":
        inside = _replication_in_container(service, name, user)
        if inside.status is OK:
            return [inside]
    return results


def _replication_from_host(service: Service, name: str, user: str) -> list[CheckResult]:
    try:
        with connect(service_dsn(service, replication="true")):
            pass
    except DrkitError as exc:
        if "pg_hba.conf" not in exc.message and "replication" not in exc.message:
            return [CheckResult(name, FAIL, exc.message)]
        found = re.search(r'host "([^"]+)"', exc.message)
        source = f"{found[1]}/32" if found else "<drkit's address>/32"
        where = "pg_hba.conf in the server's data directory"
        rt = service.runtime
        if rt.volume:
            where = f"{rt.mount or '/var/lib/postgresql/data'}/pg_hba.conf (volume {rt.volume})"
        return [
            CheckResult(
                name,
                FAIL,
                f"the server refuses replication connections from drkit, so pg_basebackup and "
                f"pg_receivewal cannot run: add the line `host replication {user} {source} scram-sha-256` "
                f"to {where}, then `select pg_reload_conf()`",
            )
        ]
    return [CheckResult(name, OK, f"pg_hba.conf allows replication connections for {user}")]


def _replication_in_container(service: Service, name: str, user: str) -> CheckResult:
    """compose: drkit runs pg_basebackup and pg_receivewal in the container (docs/nself.md,
    "Docker and compose"), so try a replication connection there, over its socket."""
    from drkit.infra.proc import last_line, run

    container = service.runtime.container
    try:
        with tool_host(service, service_dsn(service)) as host:
            args = [
                "psql",
                "-X",
                "-A",
                "-t",
                "-d",
                f"{host.login.dsn} replication=true",
                "-c",
                "IDENTIFY_SYSTEM",
            ]
            result = run(host.argv(args), timeout=60, check=False)
    except DrkitError as exc:
        return CheckResult(name, FAIL, f"cannot try replication inside {container}: {exc.message}")
    if result.returncode == 0:
        return CheckResult(
            name, OK, f"replication connections allowed inside {container} (drkit's tools run there)"
        )
    return CheckResult(
        name,
        FAIL,
        f"a replication connection inside {container} failed ({last_line(result.stderr, result.stdout)}): "
        f"pg_hba.conf needs `local replication {user} trust` (the postgres image has it)",
    )


def _archiving(service: Service, dsn: str, info: ServerInfo) -> list[CheckResult]:
    n = service.name
    mode = info.settings.get("archive_mode", "off")
    command = info.settings.get("archive_command", "")
    out = []
    if mode not in ("on", "always"):
        return [
            CheckResult(
                f"{n}: archive_mode",
                FAIL,
                f"archive_mode = {mode}: set it to on (needs a restart) or use wal_mode: stream",
            )
        ]
    uses_drkit = "wal-push" in command
    out.append(
        CheckResult(
            f"{n}: archive_command",
            OK if uses_drkit else FAIL,
            command or "(empty)"
            if uses_drkit
            else f"archive_command = {command!r} does not run `drkit wal-push %p`",
        )
    )
    row = rows(
        dsn,
        "select archived_count, last_archived_wal, last_archived_time, failed_count, "
        "last_failed_wal, last_failed_time, now() from pg_stat_archiver",
    )[0]
    archived, last_wal, last_time, failed, failed_wal, failed_time, now = row
    if failed_time and (last_time is None or failed_time > last_time):
        out.append(
            CheckResult(
                f"{n}: archiver",
                FAIL,
                f"archiving is failing: {failed} failures, last for {failed_wal} at "
                f"{failed_time:%Y-%m-%d %H:%M:%S}; pg_wal grows until the disk is full",
            )
        )
    else:
        out.append(CheckResult(f"{n}: archiver", OK, f"{archived} archived, last {last_wal or 'none yet'}"))
    ready = archive_ready_count(dsn)
    if ready is not None:
        lagging = ready > 2
        out.append(
            CheckResult(
                f"{n}: archive lag",
                WARN if lagging else OK,
                f"{ready} segment(s) waiting to be archived",
                critical=False,
            )
        )
    if service.rpo is not None:
        timeout = timedelta(seconds=int(info.settings.get("archive_timeout", "0") or 0))
        if not timeout or timeout > service.rpo:
            out.append(
                CheckResult(
                    f"{n}: archive_timeout",
                    WARN,
                    f"archive_timeout {timeout or 'off'} allows more WAL loss than the RPO {service.rpo}",
                    critical=False,
                )
            )
        if ready and last_time is not None and now - last_time > service.rpo:
            out.append(
                CheckResult(
                    f"{n}: RPO",
                    FAIL,
                    f"WAL is waiting to be archived and the last archived segment is "
                    f"{now - last_time} old, more than the RPO {service.rpo}",
                )
            )
    return out


def _stream(service: Service, dsn: str) -> list[CheckResult]:
    n = service.name
    slot = service.postgres.slot if service.postgres else "drkit"
    found = rows(
        dsn,
        "select active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
        "from pg_replication_slots where slot_name = %s",
        (slot,),
    )
    if not found:
        return [
            CheckResult(
                f"{n}: replication slot", FAIL, f"slot {slot!r} does not exist: start `drkit wal-stream`"
            )
        ]
    active, behind = found[0]
    out = [CheckResult(f"{n}: replication slot", OK, f"slot {slot!r} exists")]
    out.append(
        CheckResult(
            f"{n}: wal receiver",
            OK if active else FAIL,
            "pg_receivewal is connected"
            if active
            else f"nothing is receiving on slot {slot!r}; WAL piles up in pg_wal "
            f"({behind or 0} bytes retained)",
        )
    )
    return out


def _tools(service: Service, info: ServerInfo) -> list[CheckResult]:
    """The client tools where they run (in the container for compose: the host needs none of
    them), and pg_waldump on this host, which reads WAL for time targets."""
    server_major = info.version_num // 10000
    tools = ("pg_basebackup", "pg_dump", "pg_receivewal")
    where = ""
    if service.runtime.type == "compose":
        with tool_host(service, service_dsn(service)) as host:
            versions = {tool: host.version(tool, service.runtime.bin_dir) for tool in tools}
        where = f" in {service.runtime.container}"
    else:
        versions = {tool: tool_version(tool, service.runtime.bin_dir) for tool in tools}
    out = []
    for tool, version in versions.items():
        ok = major(version) >= server_major
        out.append(
            CheckResult(
                f"{service.name}: {tool}",
                OK if ok else FAIL,
                f"{tool} {version}{where} for server {server_major}"
                + ("" if ok else " (a client older than the server cannot back it up)"),
            )
        )
    return [*out, _waldump(service, server_major)]


def _waldump(service: Service, server_major: int) -> CheckResult:
    name = f"{service.name}: pg_waldump"
    fix = (
        f"install PostgreSQL {server_major}'s binaries on this host (Debian: postgresql-{server_major}) "
        "or set runtime.bin_dir to them"
    )
    try:
        version = tool_version("pg_waldump", service.runtime.bin_dir)
    except DrkitError:
        return CheckResult(
            name, WARN, f"not found on this host: restores to a time cannot read WAL; {fix}", critical=False
        )
    if major(version) != server_major:
        return CheckResult(
            name,
            WARN,
            f"pg_waldump {version} cannot read server {server_major}'s WAL (time targets need it); {fix}",
            critical=False,
        )
    return CheckResult(name, OK, f"pg_waldump {version} for server {server_major} (restores to a time)")


def rewind_problem(name: str, checksums: bool, wal_log_hints: bool) -> str | None:
    """Why pg_rewind cannot rewind this server (it needs data checksums or wal_log_hints),
    or None. Shared by `drkit check` and the failover engine (engines/failover/rewind.py)."""
    if checksums or wal_log_hints:
        return None
    return (
        f"pg_rewind cannot rewind {name}: it has neither data checksums nor wal_log_hints = on "
        f"(ALTER SYSTEM SET wal_log_hints = on, then restart it; until then a former primary "
        f"comes back with `drkit replica rejoin {name} --rebuild`, a fresh copy)"
    )


def check_rewind(name: str, checksums: bool, wal_log_hints: bool) -> CheckResult:
    """A replicated member's pg_rewind prerequisites (a former primary rejoins by pg_rewind)."""
    problem = rewind_problem(name, checksums, wal_log_hints)
    if problem:
        return CheckResult(f"{name}: pg_rewind", WARN, problem, critical=False)
    how = "data checksums" if checksums else "wal_log_hints = on"
    return CheckResult(f"{name}: pg_rewind", OK, f"can be rewound ({how})")


def check_sender_timeout(name: str, sender_timeout: float, window: float) -> CheckResult:
    """wal_sender_timeout against the failover window: a clean stop of a primary cut off from
    its standbys waits that long for its walsenders (synchronous commits hang as long)."""
    if sender_timeout <= 0 or sender_timeout > window:
        shown = "off" if sender_timeout <= 0 else f"{sender_timeout:.0f}s"
        return CheckResult(
            f"{name}: wal_sender_timeout",
            WARN,
            f"wal_sender_timeout = {shown}, longer than the failover window ({window:.0f}s): a primary "
            f"cut off from its standbys notices only after it (a clean stop waits that long, "
            f"synchronous commits hang as long); ALTER SYSTEM SET wal_sender_timeout = '{window:.0f}s' fits",
            critical=False,
        )
    return CheckResult(
        f"{name}: wal_sender_timeout",
        OK,
        f"{sender_timeout:.0f}s, within the failover window ({window:.0f}s)",
    )
