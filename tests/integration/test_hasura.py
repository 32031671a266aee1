"""Hasura metadata backup and restore against the sandbox's Hasura stand-in, started by the
sandbox's own part code (hasura_part) through the local-process runtime, with its metadata
in a real PostgreSQL (hdb_catalog in a database of each test's own)."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from drkit.adapters.hasura import HasuraClient
from drkit.adapters.postgres.client import execute, make_dsn
from drkit.adapters.probes import check, default_probe
from drkit.config.loader import load_stack
from drkit.domain.checks import Status
from drkit.domain.errors import OperationError
from drkit.domain.stack import Service, Stack
from drkit.engines.core.types import RestoreOptions
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.hasura import backup as hasura_backup
from drkit.engines.hasura import restore as hasura_restore
from drkit.engines.stack.backup import backup_service
from drkit.engines.stack.start import start_services
from drkit.infra.ownership import chown_tree
from drkit.infra.ports import free_port
from drkit.runtimes.factory import runtime_for
from drkit.sandbox import hasura_part
from drkit.sandbox.parts import PartContext
from drkit.sandbox.seed import SeedSize, create_schema, seed
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    """A PostgreSQL of this module's own (tests here drop tables)."""
    handle = make_sandbox("drkit-it-hasura-", services=("postgres",))
    yield handle
    destroy_sandbox(handle)


@dataclass
class HasuraEnv:
    root: Path
    stack: Stack
    dsn: str  # the database holding this Hasura's hdb_catalog and nchat's tables

    @property
    def service(self) -> Service:
        return self.stack.services["hasura"]

    @property
    def ws(self) -> Workspace:
        return open_workspace(self.stack)

    def client(self) -> HasuraClient:
        assert self.service.url
        return HasuraClient(self.service.url, admin_secret=self.service.password)


def write_config(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def hasura(box: SandboxHandle) -> Iterator[HasuraEnv]:
    """A fresh database with nchat's schema, and a Hasura stand-in on it seeded with nchat's
    metadata, prepared, started and seeded exactly as `drkit sandbox up` does."""
    name = f"hasura_it_{uuid.uuid4().hex[:8]}"
    admin = make_dsn(box.dsn, dbname="postgres")
    root = Path(tempfile.mkdtemp(prefix="drkit-it-hasura-", dir="/tmp"))
    stack: Stack | None = None
    execute(admin, f"create database {name}")
    try:
        dsn = make_dsn(box.dsn, dbname=name)
        create_schema(dsn)
        seed(dsn, SeedSize(users=20, channels=3, messages=100, attachments=10))
        ctx, stack = start_part(box, root, dsn)
        hasura_part.seed(ctx, stack)
        yield HasuraEnv(root, stack, dsn)
    finally:
        if stack is not None:
            runtime_for(stack.services["hasura"], stack.state_dir).stop()
        execute(admin, f"drop database {name} with (force)")
        shutil.rmtree(root, ignore_errors=True)


def start_part(box: SandboxHandle, root: Path, dsn: str) -> tuple[PartContext, Stack]:
    """stack.yaml with the PostgreSQL (on `dsn`), hasura_part.prepare, then `drkit start`'s code."""
    os.chmod(root, 0o755)
    postgres = yaml.safe_load(box.config_path.read_text())["services"]["postgres"]
    config: dict[str, Any] = {
        "version": 1,
        "stack": "it",
        "state_dir": str(root / "state"),
        "repositories": {"local": {"type": "fs", "path": str(root / "repo")}},
        "services": {"postgres": {**postgres, "dsn": dsn}},
    }
    write_config(root / "stack.yaml", config)
    ctx = PartContext(dir=root, os_user=box.box.os_user, stack_name="it", config_path=root / "stack.yaml")
    config["services"]["hasura"] = hasura_part.prepare(ctx).config
    write_config(root / "stack.yaml", config)
    chown_tree(root, box.box.os_user)
    stack = load_stack(root / "stack.yaml")
    report = start_services(stack, ["hasura"], runtime_for=lambda s: runtime_for(s, stack.state_dir))
    assert report.ok, report.failures
    return ctx, stack


def test_backup_then_restore_brings_back_the_exported_metadata(hasura: HasuraEnv) -> None:
    """Stands for: Hasura's export_metadata v2 / replace_metadata v2 and /healthz?strict=true.
    A backup, then a changed metadata (a table untracked, a role's permission dropped), then a
    restore: a fresh export equals the backup and strict health passes."""
    with hasura.client() as client:
        before = client.export_metadata()
    result = backup_service(hasura.ws, hasura.service)
    assert result.manifest.kind.value == "metadata"
    assert result.manifest.details["tables"] == 6
    assert result.manifest.details["resource_version"] == before.resource_version

    changed = copy.deepcopy(before.metadata)
    tables = changed["sources"][0]["tables"]
    changed["sources"][0]["tables"] = [t for t in tables if t["table"]["name"] != "nchat_attachments"]
    changed["sources"][0]["tables"][0].pop("select_permissions")
    with hasura.client() as client:
        assert client.replace_metadata(changed).replaced
        assert hasura_backup.canonical(client.export_metadata().metadata) != hasura_backup.canonical(
            before.metadata
        )

    restored = hasura_restore.restore(hasura.ws, hasura.service, RestoreOptions(yes=True))

    assert restored.backup_id == result.manifest.backup_id
    assert [(c.name, c.status) for c in restored.checks] == [
        ("replace_metadata", Status.OK),
        ("/healthz?strict=true", Status.OK),
        ("metadata equals backup", Status.OK),
    ]
    with hasura.client() as client:
        after = client.export_metadata()
        assert client.health(strict=True).ok
    assert hasura_backup.canonical(after.metadata) == hasura_backup.canonical(before.metadata)
    assert after.resource_version > before.resource_version  # it really was written again


def test_strict_health_fails_when_metadata_references_a_dropped_table(hasura: HasuraEnv) -> None:
    """Stands for: Hasura checks its metadata against the database when it rebuilds its schema
    cache (reload, replace, restart); a tracked table that no longer exists makes
    /healthz?strict=true answer 500 "ERROR: inconsistent objects in schema" (200 WARN without
    strict), and replace_metadata refuses metadata naming it (400, the live metadata kept)."""
    backup_service(hasura.ws, hasura.service)
    probe = default_probe(hasura.service)
    assert check(hasura.service, probe).healthy

    execute(hasura.dsn, "drop table nchat_attachments")
    with hasura.client() as client:
        problems = client.reload_metadata()
        strict, lenient = client.health(strict=True), client.health(strict=False)
    assert any("nchat_attachments" in p.name for p in problems)
    assert (strict.status_code, strict.text) == (500, "ERROR: inconsistent objects in schema")
    assert (lenient.status_code, lenient.text) == (200, "WARN: inconsistent objects in schema")
    outcome = check(hasura.service, probe)
    assert not outcome.healthy and "HTTP 500" in outcome.detail

    restored = hasura_restore.restore(hasura.ws, hasura.service, RestoreOptions(yes=True))
    assert [c.status for c in restored.checks] == [Status.FAILED]
    assert "nchat_attachments" in restored.checks[0].detail
    assert "NOT replaced" in restored.detail


def test_restore_says_postgres_must_come_first(hasura: HasuraEnv) -> None:
    """Stands for: Hasura keeps its metadata in PostgreSQL; with the database down, drkit
    refuses before touching Hasura and says to restore and start PostgreSQL first."""
    backup_service(hasura.ws, hasura.service)
    down = replace(hasura.stack.services["postgres"], dsn=f"host=127.0.0.1 port={free_port()} user=postgres")
    stack = replace(hasura.stack, services={**hasura.stack.services, "postgres": down})
    with pytest.raises(OperationError, match="restore and start PostgreSQL before Hasura"):
        hasura_restore.restore(open_workspace(stack), stack.services["hasura"], RestoreOptions(yes=True))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: replace(s, password="not-the-secret"), "refused the admin secret"),
        (lambda s: replace(s, url=f"http://127.0.0.1:{free_port()}"), "is not reachable"),
    ],
    ids=["wrong-secret", "server-down"],
)
def test_backup_fails_with_one_clear_line(
    hasura: HasuraEnv, change: Callable[[Service], Service], message: str
) -> None:
    """Stands for: Hasura answers 401 access-denied without the right X-Hasura-Admin-Secret;
    a stopped server refuses connections. Either way: one line, no backup recorded."""
    with pytest.raises(OperationError, match=message) as caught:
        backup_service(hasura.ws, change(hasura.service))
    assert "\n" not in caught.value.message
    assert not hasura.ws.repo.list("it/hasura/backups/")


def test_the_stand_in_answers_as_the_recorded_hasura(
    hasura: HasuraEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in speaks the contracts recorded from graphql-engine (test_contract_hasura):
    replace v2 and reload shapes, 401 without a secret, and 400 admin-only once
    HASURA_GRAPHQL_UNAUTHORIZED_ROLE is set (as nself sets it)."""
    from tests.unit.test_contract_hasura import ADMIN_ONLY, CONSISTENT, NO_SECRET

    url = f"{hasura.service.url}/v1/metadata"
    secret = {"X-Hasura-Admin-Secret": hasura.service.password or ""}
    with hasura.client() as client:
        metadata = client.export_metadata().metadata
    body = {"type": "replace_metadata", "version": 2, "args": {"metadata": metadata}}
    assert httpx.post(url, json=body, headers=secret, timeout=30).json() == CONSISTENT.body
    reload = httpx.post(url, json={"type": "reload_metadata", "args": {}}, headers=secret, timeout=30)
    assert reload.json() == {"message": "success", "is_consistent": True}
    anonymous = httpx.post(url, json={"type": "export_metadata", "args": {}}, timeout=30)
    assert (anonymous.status_code, anonymous.json()) == (NO_SECRET.status, NO_SECRET.body)

    runtime_for(hasura.service, hasura.stack.state_dir).stop()
    monkeypatch.setenv("HASURA_GRAPHQL_UNAUTHORIZED_ROLE", "public")
    report = start_services(
        hasura.stack, ["hasura"], runtime_for=lambda s: runtime_for(s, hasura.stack.state_dir)
    )
    assert report.ok, report.failures
    public = httpx.post(url, json={"type": "export_metadata", "args": {}}, timeout=30)
    assert (public.status_code, public.json()) == (ADMIN_ONLY.status, ADMIN_ONLY.body)
