"""Restore Hasura's metadata: `replace_metadata`, then `/healthz?strict=true` must pass and a
fresh export must equal the backup. Hasura checks metadata against the database's tables,
so PostgreSQL must be restored and running first; the restore says so when it is not.

By hand: `zstd -dc metadata.json.zst > metadata.json`, then
`curl -H "X-Hasura-Admin-Secret: $S" -d "{\"type\":\"replace_metadata\",\"version\":2,
\"args\":{\"metadata\":$(cat metadata.json)}}" http://hasura:8080/v1/metadata`.
"""

from __future__ import annotations

import json
from typing import Any

from drkit.adapters.hasura import HasuraClient, HasuraError, HealthAnswer, InconsistentObject
from drkit.adapters.postgres.client import describe, scalar, service_dsn
from drkit.adapters.repository.codec import sha256
from drkit.domain.backup import Manifest
from drkit.domain.checks import CheckResult, Status
from drkit.domain.errors import IntegrityError, OperationError, UsageError
from drkit.domain.stack import Service
from drkit.engines.core.layout import backup_dir, lock_name
from drkit.engines.core.restore_choice import choose_for_restore
from drkit.engines.core.types import RestoreOptions, RestoreResult
from drkit.engines.core.workspace import Workspace
from drkit.engines.hasura.backup import METADATA_FILE, canonical, client_for
from drkit.infra import locks
from drkit.infra.clock import Clock
from drkit.infra.wait import wait_for

HEALTH_WAIT = 30.0  # Hasura rebuilds its schema cache on replace; give strict health a moment
REMOTE_WAIT = 120.0  # functions (serving remote schemas) may still be starting
SERVED = frozenset({"remote_schema", "remote_schema_permission"})  # objects another service serves


def restore(ws: Workspace, service: Service, options: RestoreOptions) -> RestoreResult:
    """replace_metadata with the backup, then strict health and an export that matches."""
    if options.to or options.prefix:
        raise UsageError("hasura metadata is restored into the configured server; --to/--prefix do not apply")
    began = ws.clock.monotonic()
    manifest = choose_backup(ws, service, options)
    metadata = read_metadata(ws, manifest)
    require_postgres(ws, service)
    with locks.exclusive(ws.lock_dir, lock_name(service.name), "restore"), client_for(service) as hasura:
        replaced = replace_for_restore(ws.clock, hasura, metadata, manifest.backup_id)
        if replaced[0].status is Status.FAILED:
            detail = "metadata NOT replaced: it does not match the database (PostgreSQL at another point?)"
            return RestoreResult(
                service.name, manifest.backup_id, ws.clock.monotonic() - began, detail, replaced
            )
        checks = (*replaced, strict_health(ws, hasura), matches_backup(hasura, metadata))
    seconds = ws.clock.monotonic() - began
    detail = f"metadata of {manifest.finished_at.isoformat()} replaced in {seconds:.1f}s"
    return RestoreResult(service.name, manifest.backup_id, seconds, detail, checks)


def replace_for_restore(
    clock: Clock, hasura: HasuraClient, metadata: dict[str, Any], backup_id: str
) -> tuple[CheckResult, ...]:
    """replace_metadata; when Hasura refuses it only because remote schemas are unreachable
    (served by `functions`, which starts after Hasura), replace with
    allow_inconsistent_metadata and reload until they answer, so the restore ends consistent.
    Actions need no such wait: Hasura calls their handlers only when they are queried."""
    outcome = hasura.replace_metadata(metadata)
    if outcome.replaced:
        return (CheckResult("replace_metadata", Status.OK, f"replaced with {backup_id}"),)
    if not outcome.inconsistent or not all(o.type in SERVED for o in outcome.inconsistent):
        return (CheckResult("replace_metadata", Status.FAILED, _inconsistency(outcome.inconsistent)),)
    hasura.replace_metadata(metadata, allow_inconsistent=True)
    first = CheckResult(
        "replace_metadata",
        Status.OK,
        f"replaced with {backup_id}, allowing {len(outcome.inconsistent)} unreachable remote schema(s)",
    )
    return first, reload_until_consistent(clock, hasura)


def reload_until_consistent(clock: Clock, hasura: HasuraClient) -> CheckResult:
    """reload_metadata (remote schemas included) until nothing is inconsistent, or say what is."""
    last: list[tuple[InconsistentObject, ...]] = [()]

    def consistent() -> bool:
        last[0] = hasura.reload_metadata()
        return not last[0]

    try:
        wait_for(
            consistent, timeout=REMOTE_WAIT, what="remote schemas to answer", clock=clock, max_interval=2.0
        )
    except OperationError:
        return CheckResult(
            "remote schemas",
            Status.FAILED,
            f"{_inconsistency(last[0])} after {REMOTE_WAIT:.0f}s: start the service that serves them "
            "(functions), then `drkit restore` hasura again or reload its metadata",
        )
    return CheckResult("remote schemas", Status.OK, "reloaded: every remote schema answers")


def choose_backup(ws: Workspace, service: Service, options: RestoreOptions) -> Manifest:
    return choose_for_restore(ws, service, options).manifest  # the one rule (core/choose.py)


def read_metadata(ws: Workspace, manifest: Manifest) -> dict[str, Any]:
    stored = next((f for f in manifest.files if f.name.startswith(METADATA_FILE)), None)
    if stored is None:
        raise IntegrityError(f"{manifest.backup_id} lists no {METADATA_FILE}")
    data = ws.repo.get(f"{backup_dir(manifest.stack, manifest.service, manifest.backup_id)}/{stored.name}")
    if sha256(data) != stored.sha256:
        raise IntegrityError(f"{manifest.backup_id}/{stored.name}: SHA-256 does not match the manifest")
    raw = ws.codec.decode(data, name=stored.name, encrypted=manifest.encrypted)
    metadata = json.loads(raw)
    if not isinstance(metadata, dict):
        raise IntegrityError(f"{manifest.backup_id}/{stored.name} does not hold a metadata object")
    return metadata


def require_postgres(ws: Workspace, service: Service) -> None:
    """Hasura's metadata lives in PostgreSQL: refuse clearly when that is not back yet."""
    for name in service.depends_on:
        dep = ws.stack.services.get(name)
        if dep is None or dep.kind != "postgres" or not dep.dsn:
            continue
        dsn = service_dsn(dep, connect_timeout=5)
        try:
            scalar(dsn, "select 1")
        except OperationError as exc:
            raise OperationError(
                f"PostgreSQL ({name}, {describe(dsn)}) is not reachable, and Hasura keeps its metadata "
                f"there (hdb_catalog): restore and start PostgreSQL before Hasura ({exc.message})",
                hint=f"drkit restore {name} ... && drkit start {name}",
            ) from exc


def strict_health(ws: Workspace, hasura: HasuraClient) -> CheckResult:
    def passing() -> HealthAnswer | None:
        answer = hasura.health(strict=True)
        if "inconsistent" in answer.text:  # a verdict on the metadata, not a server starting up
            raise _Unhealthy(f"HTTP {answer.status_code} {answer.text.strip()}")
        return answer if answer.ok else None

    try:
        answer = wait_for(
            passing,
            timeout=HEALTH_WAIT,
            what="/healthz?strict=true to answer OK",
            clock=ws.clock,
            retry_on=(HasuraError,),
            fatal=(_Unhealthy,),
        )
    except (OperationError, _Unhealthy) as exc:
        try:
            detail = _inconsistency(hasura.inconsistent_objects()) or str(exc)
        except HasuraError:
            detail = str(exc)
        return CheckResult("/healthz?strict=true", Status.FAILED, detail)
    return CheckResult("/healthz?strict=true", Status.OK, f"HTTP {answer.status_code} {answer.text.strip()}")


def matches_backup(hasura: HasuraClient, metadata: dict[str, Any]) -> CheckResult:
    exported = hasura.export_metadata()
    if canonical(exported.metadata) == canonical(metadata):
        return CheckResult(
            "metadata equals backup", Status.OK, f"resource_version {exported.resource_version}"
        )
    return CheckResult("metadata equals backup", Status.FAILED, "a fresh export differs from the backup")


class _Unhealthy(Exception):
    """Strict health answered, and the answer is: inconsistent metadata."""


def _inconsistency(objects: tuple[InconsistentObject, ...]) -> str:
    if not objects:
        return ""
    more = f" (and {len(objects) - 1} more)" if len(objects) > 1 else ""
    return f"inconsistent: {objects[0].describe()}{more}"
