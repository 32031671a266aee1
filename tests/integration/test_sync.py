"""Off-site copies on the real sandbox (PostgreSQL archiving its WAL, SeaweedFS): a set taken
with `backup --all` (a base backup, WAL, an objects backup and its data) is synced from the
sandbox's filesystem repository to a second bucket on the sandbox's S3 server.

- `verify --repo` passes on the copy, and finds (exit 3, naming it) a byte changed there;
- a sync killed -9 after its first backup file leaves an incomplete backup there, and the
  next run copies only what is missing (every blob that arrived keeps its bytes: with age
  encryption a second write would give other bytes);
- a restore whose only repository is the encrypted copy brings PostgreSQL back."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from drkit.adapters.postgres.client import connect
from drkit.adapters.repository.fs import FsRepository
from drkit.adapters.repository.port import Repository
from drkit.adapters.repository.s3 import S3Repository
from drkit.adapters.s3.objects import ObjectStore, endpoint_for
from drkit.config.loader import load_stack
from drkit.domain.sets import RestoreSet
from drkit.domain.stack import RepositorySpec
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.set_refs import set_key
from drkit.engines.core.workspace import open_workspace
from drkit.infra.wait import wait_for
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    """A sandbox of this module's own, with one set (base, WAL, objects) in its repository."""
    handle = make_sandbox("drkit-it-sync-", services=("postgres", "s3"))
    try:
        taken = run_drkit("--output", "json", "backup", "--all", config=handle.config_path)
        assert taken.code == 0, taken.stderr
        handle.psql("insert into nchat_messages (channel_id, content) select id, 'after' from nchat_channels")
        switch_and_wait_archived(handle.dsn)
        yield handle
    finally:
        destroy_sandbox(handle)


def _with_copy(
    box: SandboxHandle, *, encrypt: bool = False, only_copy: bool = False, sign_key: Path | None = None
) -> tuple[Path, Repository]:
    """A stack.yaml beside the sandbox's with a repository `offsite`: a new bucket on the
    sandbox's S3 server (age-encrypted when asked, signing with `sign_key` when given).
    `only_copy`: the copy is its only repository (what a restore elsewhere would have)."""
    endpoint = endpoint_for(box.stack.services["s3"])
    bucket = f"offsite-{uuid.uuid4().hex[:8]}"
    ObjectStore(endpoint).create_bucket(bucket)
    (box.dir / "offsite-access").write_text(endpoint.access_key or "")
    (box.dir / "offsite-secret").write_text(endpoint.secret_key or "")
    offsite: dict[str, Any] = {
        "type": "s3",
        "endpoint": endpoint.url,
        "bucket": bucket,
        "prefix": "copy",
        "access_key": f"file:{box.dir / 'offsite-access'}",
        "secret_key": f"file:{box.dir / 'offsite-secret'}",
    }
    if encrypt:
        key = pyrage.x25519.Identity.generate()
        (box.dir / "offsite-key.txt").write_text(f"{key}\n")
        offsite["encryption"] = {
            "recipients": [str(key.to_public())],
            "identity": f"file:{box.dir / 'offsite-key.txt'}",
        }
    if sign_key is not None:
        offsite["sign_key"] = f"file:{sign_key}"
    config = yaml.safe_load(box.config_path.read_text())
    config["repositories"]["offsite"] = offsite
    config["repository"] = config.get("repository") or next(iter(config["repositories"]))
    path = box.dir / f"stack-{bucket}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    spec = load_stack(path).repositories["offsite"]
    return path, S3Repository(spec)


def _copy_only(path: Path) -> Path:
    config = yaml.safe_load(path.read_text())
    config["repositories"] = {"offsite": config["repositories"]["offsite"]}
    config["repository"] = "offsite"
    out = path.with_name(path.stem + "-only.yaml")
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def _blobs(repo: Repository) -> dict[str, str]:
    return {key: hashlib.sha256(repo.get(key)).hexdigest() for key in repo.list("sandbox/")}


def _source(box: SandboxHandle) -> Repository:
    spec: RepositorySpec = box.stack.repository
    return FsRepository(spec.path or "")


def test_a_synced_copy_verifies_alone_and_a_changed_byte_there_is_named(box: SandboxHandle) -> None:
    config, copy = _with_copy(box)
    synced = run_drkit("--output", "json", "sync", "--to", "offsite", config=config)
    assert synced.code == 0, synced.stderr
    (report,) = synced.json()["repositories"]
    kinds = {b.split("/")[0] for b in report["backups"]}
    assert {"postgres", "s3"} <= kinds, report
    source_keys = {k for k in _source(box).list("sandbox/") if not k.endswith("lease.json")}
    assert source_keys <= set(copy.list("sandbox/")), "every committed blob is in the copy"
    assert copy.list("sandbox/sets/") and copy.list("sandbox/postgres/wal/")

    listed = run_drkit("--output", "json", "backups", "list", config=config)
    assert listed.code == 0, listed.stderr
    assert [s["set_id"] for s in listed.json()["sets"]] == [
        k.split("/")[-1][:-5] for k in copy.list("sandbox/sets/")
    ]

    ok = run_drkit("verify", "--repo", "offsite", config=config)
    assert ok.code == 0, ok.stdout + ok.stderr
    again = run_drkit("--output", "json", "sync", config=config)
    assert again.code == 0 and again.json()["repositories"][0]["copied"] == 0, again.stdout

    victim = next(k for k in copy.list("sandbox/postgres/backups/") if ".tar." in k)
    data = bytearray(copy.get(victim))
    data[len(data) // 2] ^= 0x01
    copy.put(victim, bytes(data))
    bad = run_drkit("--output", "json", "verify", "--repo", "offsite", config=config)
    assert bad.code == 3, bad.stdout + bad.stderr
    failed = [
        (b["backup_id"], c["name"])
        for b in bad.json()["backups"]
        for c in b["results"]
        if c["status"] == "failed"
    ]
    assert failed == [(victim.split("/")[-2], f"file {victim.split('/')[-1]}")], failed
    text = run_drkit("verify", "--repo", "offsite", config=config)
    assert text.code == 3 and victim.split("/")[-1] in text.stdout, text.stdout


def _key(path: Path) -> Path:
    path.write_text(os.urandom(24).hex() + "\n")
    return path


def test_a_copy_to_a_signed_bucket_is_signed_there_and_an_unsigned_source_is_refused(
    box: SandboxHandle, tmp_path: Path
) -> None:
    """The bucket signs with its own key: sync checks each manifest's and set's signature at
    the source, signs it there, and `verify --repo` accepts the copy. From the sandbox's
    repository, which signs nothing, it copies nothing and says why."""
    config, copy = _with_copy(box, sign_key=_key(tmp_path / "offsite.key"))
    refused = run_drkit("sync", "--to", "offsite", config=config)
    assert refused.code == 2, refused.stdout + refused.stderr
    assert "repository 'offsite' has a sign_key and the source repository" in refused.stderr
    assert not copy.list("sandbox/")

    signed = yaml.safe_load(config.read_text())
    signed["state_dir"] = str(tmp_path / "state")
    signed["repositories"]["signed"] = {
        "type": "fs",
        "path": str(tmp_path / "signed-repo"),
        "sign_key": f"file:{_key(tmp_path / 'local.key')}",
    }
    signed["repository"] = "signed"
    signed_config = tmp_path / "stack.yaml"
    signed_config.write_text(yaml.safe_dump(signed, sort_keys=False))
    for service, kind in (("s3", "base"), ("postgres", "logical")):  # (a base backup's WAL goes elsewhere)
        taken = run_drkit("backup", service, "--type", kind, config=signed_config)
        assert taken.code == 0, taken.stdout + taken.stderr
    ws = open_workspace(load_stack(signed_config))
    (objects,) = list_backups(ws.repo, "sandbox", "s3").complete
    now = ws.clock.now()
    held = RestoreSet("20260101T000000Z-set", "sandbox", now, "none", "0/0", {"s3": objects.backup_id}, now)
    ws.repo.put(set_key("sandbox", held.set_id), held.to_json())  # signed, as `backup --all` writes it

    synced = run_drkit("--output", "json", "sync", "--to", "offsite", config=signed_config)
    assert synced.code == 0, synced.stdout + synced.stderr
    (report,) = synced.json()["repositories"]
    assert {b.split("/")[0] for b in report["backups"]} == {"postgres", "s3"} and not report["not_copied"]
    manifests = [k for k in copy.list("sandbox/") if k.endswith("/manifest.json") or "/sets/" in k]
    source = FsRepository(str(tmp_path / "signed-repo"))
    for key in (k for k in manifests if not k.endswith(".sig")):
        assert copy.exists(key + ".sig") and copy.get(key + ".sig") != source.get(key + ".sig"), key

    checked = run_drkit("verify", "--repo", "offsite", config=signed_config)
    assert checked.code == 0, checked.stdout + checked.stderr
    listed = run_drkit("--output", "json", "backups", "list", config=_copy_only(signed_config))
    assert listed.code == 0 and listed.json()["sets"], listed.stdout + listed.stderr
    assert not listed.json().get("damaged"), listed.stdout


def test_a_killed_sync_resumes_with_what_is_missing_and_the_encrypted_copy_restores(
    box: SandboxHandle, tmp_path: Path
) -> None:
    config, copy = _with_copy(box, encrypt=True)
    argv = [sys.executable, "-m", "drkit", "--config", str(config), "sync", "--to", "offsite"]
    env = {**os.environ, "DRKIT_TEST_HOLD": f"sync-copying:{tmp_path}"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for((tmp_path / "sync-copying.reached").exists, timeout=120, what="the sync's hold point")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    arrived = _blobs(copy)
    partial = run_drkit("--output", "json", "backups", "list", config=_copy_only(config))
    assert partial.code == 0, partial.stderr
    assert partial.json()["incomplete"], "the backup being copied has no manifest there yet"
    assert any("/backups/" in k for k in arrived)

    resumed = run_drkit("--output", "json", "sync", "--to", "offsite", config=config)
    assert resumed.code == 0, resumed.stderr
    after = _blobs(copy)
    assert {k: after[k] for k in arrived} == arrived, "a blob that had arrived was written again"
    assert resumed.json()["repositories"][0]["copied"] == len(after) - len(arrived)

    checked = run_drkit("verify", "--repo", "offsite", config=config)
    assert checked.code == 0, checked.stdout + checked.stderr
    stored = next(k for k in after if k.startswith("sandbox/postgres/backups/") and ".tar." in k)
    assert copy.get(stored).startswith(b"age-encryption.org/")

    only = _copy_only(config)
    expected = box.psql("select count(*) from nchat_messages")
    dest = restore_dir(box.dir, f"from-copy-{uuid.uuid4().hex[:6]}", box.box.os_user)
    restored = run_drkit(
        "--output", "json", "restore", "postgres", "--to", str(dest), "--keep-running", config=only
    )
    assert restored.code == 0, restored.stdout + restored.stderr
    try:
        port = json.loads(restored.stdout[restored.stdout.index("{") :])["port"]
        assert _count(port) == expected
    finally:
        stop_restored(dest, box.box.os_user)


def _count(port: int) -> int:
    with connect(query_dsn(port)) as conn:
        row = conn.execute("select count(*) from nchat_messages").fetchone()
    return int(row[0]) if row else -1
