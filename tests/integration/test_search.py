"""MeiliSearch dumps, restores, retention and rebuilds against the sandbox's MeiliSearch
stand-in, started by the sandbox's own part code (meilisearch_part) through the
local-process runtime, its `messages` index built from a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from drkit.adapters.meilisearch import MeilisearchClient, MeilisearchError
from drkit.adapters.repository.codec import sha256
from drkit.config.loader import load_stack
from drkit.domain.backup import StoredFile
from drkit.domain.checks import Status
from drkit.domain.errors import IntegrityError, OperationError
from drkit.domain.sets import RestoreSet
from drkit.domain.stack import Service, Stack
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.set_refs import set_key
from drkit.engines.core.types import RestoreOptions
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.ops.prune import prune
from drkit.engines.search import backup as search_backup
from drkit.engines.search import restore as search_restore
from drkit.engines.search.rebuild import search_count_checks
from drkit.engines.stack.backup import backup_service
from drkit.engines.stack.start import start_services
from drkit.infra.ownership import chown_tree
from drkit.runtimes.factory import runtime_for
from drkit.sandbox import meilisearch_part
from drkit.sandbox.parts import PartContext
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox

pytestmark = pytest.mark.integration
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    """A PostgreSQL of this module's own, seeded with nchat's 1000 messages."""
    handle = make_sandbox("drkit-it-search-", services=("postgres",))
    yield handle
    destroy_sandbox(handle)


@dataclass
class SearchEnv:
    root: Path
    stack: Stack
    box: SandboxHandle

    @property
    def service(self) -> Service:
        return self.stack.services["meilisearch"]

    @property
    def ws(self) -> Workspace:
        return open_workspace(self.stack)

    def client(self) -> MeilisearchClient:
        assert self.service.url
        return MeilisearchClient(self.service.url, api_key=self.service.password)

    def count(self, index: str = "messages") -> int:
        with self.client() as meili:
            return meili.index_count(index)

    def write(self, documents: list[dict[str, Any]], *, clear: bool = False) -> None:
        with self.client() as meili:
            if clear:
                meili.wait_succeeded(meili.delete_all_documents("messages"), timeout=TIMEOUT)
            meili.wait_succeeded(meili.add_documents("messages", documents), timeout=TIMEOUT)


@pytest.fixture
def search(box: SandboxHandle) -> Iterator[SearchEnv]:
    """A MeiliSearch stand-in prepared, started and seeded exactly as `drkit sandbox up` does."""
    root = Path(tempfile.mkdtemp(prefix="drkit-it-search-", dir="/tmp"))
    stack: Stack | None = None
    try:
        os.chmod(root, 0o755)
        config: dict[str, Any] = {
            "version": 1,
            "stack": "it",
            "state_dir": str(root / "state"),
            "repositories": {"local": {"type": "fs", "path": str(root / "repo")}},
            "services": {"postgres": yaml.safe_load(box.config_path.read_text())["services"]["postgres"]},
        }
        ctx = PartContext(dir=root, os_user=box.box.os_user, stack_name="it", config_path=root / "stack.yaml")
        config["services"]["meilisearch"] = meilisearch_part.prepare(ctx).config
        (root / "stack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        chown_tree(root, box.box.os_user)
        stack = load_stack(root / "stack.yaml")
        started = start_services(
            stack, ["meilisearch"], runtime_for=lambda s: runtime_for(s, stack.state_dir)
        )
        assert started.ok, started.failures
        meilisearch_part.seed(ctx, stack)
        yield SearchEnv(root, stack, box)
    finally:
        if stack is not None:
            runtime_for(stack.services["meilisearch"], stack.state_dir).stop()
        shutil.rmtree(root, ignore_errors=True)


def test_dump_backup_and_restore_bring_back_the_documents(search: SearchEnv) -> None:
    """Stands for: Meilisearch's POST /dumps task, the .dump file in --dump-dir, and a restart
    with --import-dump into an empty --db-path (it refuses an existing database, and listens
    only once the import is done). Documents added and deleted after the dump are undone."""
    table = search.box.psql("select count(*) from nchat_messages")
    assert search.count() == table == 1000
    result = backup_service(search.ws, search.service)
    manifest = result.manifest
    assert manifest.details["documents"] == {"messages": 1000}
    assert manifest.details["counts_exact"] is True
    assert not list((search.root / "meilisearch" / "dumps").iterdir())  # fetched, then removed

    search.write([{"id": 10_000 + i, "content": "after the dump"} for i in range(7)], clear=True)
    assert search.count() == 7
    assert [c.status for c in search_count_checks(search.stack)] == [Status.WARNING]

    restored = search_restore.restore(search.ws, search.service, RestoreOptions(yes=True))

    assert restored.backup_id == manifest.backup_id
    assert [(c.name, c.status) for c in restored.checks] == [("index messages", Status.OK)]
    assert search.count() == 1000
    with search.client() as meili:
        ids = {d["id"] for d in meili.get_documents("messages", limit=2000)}
    assert len(ids) == 1000 and not any(i >= 10_000 for i in ids)
    aside = [p for p in (search.root / "meilisearch").iterdir() if ".drkit-before-restore-" in p.name]
    assert len(aside) == 1 and (aside[0] / "data.json").exists()  # the old database, kept
    assert runtime_for(search.service, search.stack.state_dir).is_running()
    assert [c.status for c in search_count_checks(search.stack)] == [Status.OK]


def test_snapshot_backup_and_restore(search: SearchEnv) -> None:
    """Stands for: Meilisearch's POST /snapshots task writing <snapshot-dir>/data.ms.snapshot,
    and --import-snapshot into an empty --db-path (same version only)."""
    manifest = search_backup.backup_snapshot(search.ws, search.service).manifest
    assert manifest.backup_id.endswith("-snapshot") and manifest.details["artifact"] == "snapshot"
    search.write([{"id": 30_000, "content": "after the snapshot"}], clear=True)

    restored = search_restore.restore(search.ws, search.service, RestoreOptions(backup_id=manifest.backup_id))

    assert [(c.name, c.status) for c in restored.checks] == [("index messages", Status.OK)]
    assert search.count() == 1000
    assert "snapshot of" in restored.detail


def test_backups_remove_nothing_and_prune_keeps_the_last_five_dumps_and_any_a_set_needs(
    search: SearchEnv,
) -> None:
    """Stands for: the source's "Retention: last 5" for search backups, now applied by
    `drkit prune` alone (keep_last 5 when nothing is configured): a backup removes no other
    backup; prune removes older dumps, newest first kept, and a dump a stack-wide set refers
    to stays whatever its age."""
    ws = search.ws
    first = backup_service(ws, search.service).manifest.backup_id
    now = datetime.now(UTC)
    pinned = RestoreSet("20200101T000000Z-set", "it", now, "drkit-x", "0/0", {"meilisearch": first}, now)
    ws.repo.put(set_key("it", pinned.set_id), pinned.to_json())
    ids = [first] + [backup_service(ws, search.service).manifest.backup_id for _ in range(6)]

    def kept() -> set[str]:
        return {m.backup_id for m in list_backups(ws.repo, "it", "meilisearch").complete}

    assert len(set(ids)) == 7
    assert kept() == set(ids), "a backup removed another"

    result = prune(ws, search.service, dry_run=False)

    assert {d.name for d in result.plan.drop} == {ids[1]}
    assert kept() == {first, *ids[-5:]}
    assert not ws.repo.list(f"it/meilisearch/backups/{ids[1]}/")  # every file gone, not only the manifest


def test_rebuild_from_postgres_gives_as_many_documents_as_the_table(search: SearchEnv) -> None:
    """Stands for: documents tasks in batches, POST /swap-indexes and index settings, as
    Meilisearch has them. Stale documents vanish, settings survive, counts match the table."""
    with search.client() as meili:
        meili.wait_succeeded(
            meili.update_settings("messages", {"filterableAttributes": ["channel_id"]}), timeout=TIMEOUT
        )
    search.write([{"id": 999_999, "content": "stale: not in PostgreSQL"}])
    search.box.psql("insert into nchat_messages (channel_id, content) select id, 'new' from nchat_channels")
    try:
        table = search.box.psql("select count(*) from nchat_messages")
        runner = CliRunner()
        out = runner.invoke(cli_app(), ["--config", str(search.root / "stack.yaml"), "--output", "json",
                                        "search", "rebuild", "messages", "--batch-size", "300"])  # fmt: skip
        assert out.exit_code == 0, out.output
        with search.client() as meili:
            settings = meili.get_settings("messages")
            assert meili.get_index("messages__drkit_rebuild") is None
        assert search.count() == table == 1005
        assert settings["filterableAttributes"] == ["channel_id"]
        assert '"batches": 4' in out.output and '"swapped": true' in out.output
    finally:
        search.box.psql("delete from nchat_messages where content = 'new'")


def test_a_failed_dump_task_is_a_clear_error(search: SearchEnv) -> None:
    """Stands for: a dump task that fails on the server (here its dump directory cannot be
    created) ends `failed` with an error object; drkit names the task and the reason, and no
    backup exists."""
    dumps = search.root / "meilisearch" / "dumps"
    shutil.rmtree(dumps, ignore_errors=True)
    dumps.write_text("not a directory")
    with pytest.raises(MeilisearchError, match=r"task \d+ \(dumpCreation\) failed: .*dumps"):
        backup_service(search.ws, search.service)
    assert list_backups(search.ws.repo, "it", "meilisearch").complete == ()


def test_a_corrupted_dump_is_refused_before_the_server_is_touched(search: SearchEnv) -> None:
    """Stands for: a Meilisearch that keeps serving while drkit prepares a restore. A byte
    flipped in the stored dump stops the restore on the hash, before the server is stopped
    or its database moved; the live index keeps every document."""
    manifest = backup_service(search.ws, search.service).manifest
    key = f"it/meilisearch/backups/{manifest.backup_id}/{manifest.files[0].name}"
    data = bytearray(search.ws.repo.get(key))
    data[len(data) // 2] ^= 0xFF
    search.ws.repo.put(key, bytes(data))
    search.write([{"id": 20_000, "content": "written after the backup"}])

    with pytest.raises(IntegrityError, match="does not match its manifest"):
        search_restore.restore(search.ws, search.service, RestoreOptions(yes=True))

    assert search.count() == 1001
    assert not [p for p in (search.root / "meilisearch").iterdir() if ".drkit-" in p.name]


def test_an_import_the_server_rejects_puts_the_old_database_back(search: SearchEnv) -> None:
    """Stands for: Meilisearch exits at launch when --import-dump names a file it cannot read
    as a dump. The backup here is consistent with its manifest but not a dump; drkit sees the
    server exit, moves the previous database back, restarts it, and says so."""
    manifest = backup_service(search.ws, search.service).manifest
    ws, prefix = search.ws, f"it/meilisearch/backups/{manifest.backup_id}"
    stored = ws.codec.encode(b"not a dump")
    for f in manifest.files:
        ws.repo.delete(f"{prefix}/{f.name}")
    part = StoredFile(manifest.files[0].name, len(stored), sha256(stored), 10)
    ws.repo.put(f"{prefix}/{part.name}", stored)
    details = {**manifest.details, "sha256": sha256(b"not a dump")}
    ws.repo.put(f"{prefix}/manifest.json", replace(manifest, files=(part,), details=details).to_json())
    search.write([{"id": 40_000, "content": "only in the live database"}])

    with pytest.raises(OperationError, match="it exited: .*previous database is back in place"):
        search_restore.restore(ws, search.service, RestoreOptions(yes=True))

    assert search.count() == 1001
    assert not [p for p in (search.root / "meilisearch").iterdir() if ".drkit-before-restore-" in p.name]


def cli_app() -> Any:
    """drkit's root options with the search commands, as cli/app.py will register them."""
    import typer

    from drkit.cli import app as drkit_app
    from drkit.cli import search_cmds

    app = typer.Typer()
    app.callback()(drkit_app.root)
    search_cmds.register(app)
    return app
