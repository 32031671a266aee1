"""Object storage backups on a real S3 server (SeaweedFS): versions and delete markers are
copied once, restores pick each key's version as of a time, and a non-empty target is
only replaced when the operator says yes."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.adapters.s3.objects import ObjectStore
from drkit.config.loader import load_stack
from drkit.domain.errors import ExitCode, RepositoryError, UsageError
from drkit.domain.stack import Service
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.types import RestoreOptions
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.objects import backup as objects_backup
from drkit.engines.objects import restore as objects_restore
from drkit.engines.objects.verify import verify_objects
from drkit.engines.stack.cross_checks import attachments_check
from drkit.infra.wait import wait_for
from tests.integration.conftest import SandboxHandle
from tests.integration.s3_fixtures import S3Server

pytestmark = pytest.mark.integration


def objects_stack(server: S3Server, where: Path, *buckets: str) -> tuple[Workspace, Service, Path]:
    """A stack with one s3 service (these buckets) and a repository in a directory."""
    config = {
        "version": 1,
        "stack": "objects-it",
        "state_dir": str(where / "state"),
        "repositories": {"local": {"type": "fs", "path": str(where / "repo")}},
        "services": {"objects": server.service_yaml(*buckets)},
    }
    path = where / "stack.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    ws = open_workspace(load_stack(path))
    return ws, ws.stack.services["objects"], path


def digests(store: ObjectStore, bucket: str, prefix: str = "") -> dict[str, str]:
    """Every current object of a bucket and the SHA-256 of its content."""
    return {key: store.sha256_of(bucket, key) for key in store.current(bucket, prefix)}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def after_second_of(moment: datetime) -> None:
    """S3 times have one-second precision: wait until a write is surely later than `moment`."""
    boundary = moment.replace(microsecond=0) + timedelta(seconds=1)
    wait_for(lambda: datetime.now(UTC) >= boundary, timeout=5, what="the next second")


def test_backup_then_restore_as_of_the_first_backup(s3_server: S3Server, tmp_path: Path, drkit: Any) -> None:
    store = s3_server.store()
    bucket = s3_server.new_bucket("it-objects", versioned=False)
    big = (bytes(range(256)) * 4096) * 9  # 9 MiB: two parts in the repository, multipart on restore
    first_state = {f"docs/{i}.txt": f"first {i}".encode() for i in range(4)} | {"media/big.bin": big}
    for key, data in first_state.items():
        store.put(bucket, key, data, "text/plain", {"origin": "test"})
    ws, service, config = objects_stack(s3_server, tmp_path, bucket)

    first = objects_backup.backup(ws, service)
    assert store.versioning(bucket) == "Enabled"  # the backup turned versioning on
    assert first.manifest.kind.value == "objects"
    assert first.manifest.details["new_versions"] == 5
    moment = first.manifest.finished_at

    after_second_of(moment)
    store.put(bucket, "docs/0.txt", b"second 0", "text/plain", {})
    store.delete(bucket, "docs/1.txt")
    store.put(bucket, "docs/new.txt", b"new after T", "text/plain", {})
    second = objects_backup.backup(ws, service)
    counts = second.manifest.details["buckets"][bucket]
    assert second.manifest.details["new_versions"] == 2
    assert (counts["versions"], counts["delete_markers"], counts["keys"]) == (7, 1, 6)

    expected = {key: sha(data) for key, data in first_state.items()}
    restored = objects_restore.restore(ws, service, RestoreOptions(target_time=moment, to=f"{bucket}-at-t"))
    assert digests(store, f"{bucket}-at-t") == expected
    assert all(c.status.value == "ok" for c in restored.checks)
    head = s3_server.client().head_object(Bucket=f"{bucket}-at-t", Key="docs/2.txt")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"origin": "test"})

    # Only a prefix, into another bucket, through the command line.
    cli = drkit(
        "restore",
        "objects",
        "--target-time",
        moment.isoformat(),
        "--prefix",
        "docs/",
        "--to",
        f"{bucket}-docs",
        config=config,
    )
    assert cli.code == 0, cli.stderr
    assert digests(store, f"{bucket}-docs") == {k: v for k, v in expected.items() if k.startswith("docs/")}


def test_a_non_empty_target_is_refused_without_yes_and_replaced_with_it(
    s3_server: S3Server, tmp_path: Path, drkit: Any
) -> None:
    store = s3_server.store()
    bucket = s3_server.new_bucket("it-inplace")
    for i in range(3):
        store.put(bucket, f"k{i}", f"old {i}".encode(), "text/plain", {})
    ws, service, config = objects_stack(s3_server, tmp_path, bucket)
    moment = objects_backup.backup(ws, service).manifest.finished_at
    after_second_of(moment)
    store.put(bucket, "k0", b"changed", "text/plain", {})
    store.delete(bucket, "k1")
    store.put(bucket, "k9", b"born after T", "text/plain", {})
    objects_backup.backup(ws, service)
    now = digests(store, bucket)

    with pytest.raises(UsageError, match=f"bucket {bucket} .* is not empty") as refused:
        objects_restore.restore(ws, service, RestoreOptions(target_time=moment))
    assert refused.value.exit_code is ExitCode.USAGE
    cli = drkit("restore", "objects", "--target-time", moment.isoformat(), "--to", bucket, config=config)
    assert cli.code == 2 and "not empty" in cli.stderr, cli.stderr
    assert digests(store, bucket) == now  # refused before anything was written

    result = objects_restore.restore(ws, service, RestoreOptions(target_time=moment, yes=True))
    assert digests(store, bucket) == {f"k{i}": sha(f"old {i}".encode()) for i in range(3)}
    assert "1 deleted" in result.detail and "1 already identical" in result.detail
    # What the restore replaced or deleted is still there, as noncurrent versions.
    kept = {(v.key, v.delete_marker) for v in store.versions(bucket) if not v.is_latest}
    assert ("k9", False) in kept and ("k0", False) in kept


def test_ten_thousand_objects_a_second_backup_copies_nothing(s3_server: S3Server, tmp_path: Path) -> None:
    store = s3_server.store()
    bucket = s3_server.new_bucket("it-10k", versioned=False)  # the backup turns it on; `null` versions
    keys = [f"files/{i // 100:03d}/{i:05d}.txt" for i in range(10_000)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: store.put(bucket, k, k.encode(), "text/plain", {}), keys))
    ws, service, _ = objects_stack(s3_server, tmp_path, bucket)

    started = time.monotonic()
    first = objects_backup.backup(ws, service)
    assert first.manifest.details["new_versions"] == 10_000
    between = time.monotonic()
    stored_before = ws.repo.list(f"{ws.stack.name}/{service.name}/objects/")
    second = objects_backup.backup(ws, service)
    # nothing copied: not one pack, blob or catalog entry more in the repository
    assert ws.repo.list(f"{ws.stack.name}/{service.name}/objects/") == stored_before
    print(f"10,000 objects: first backup {between - started:.1f}s, second {time.monotonic() - between:.1f}s")
    assert second.manifest.details["new_versions"] == 0
    assert second.manifest.details["summary"].startswith("0 new versions")
    assert second.manifest.details["buckets"][bucket]["versions"] == 10_000
    complete = list_backups(ws.repo, ws.stack.name, service.name).complete
    assert [m.backup_id for m in complete] == [first.manifest.backup_id, second.manifest.backup_id]


def test_the_sandbox_seeds_one_object_per_attachment_and_backs_them_up(
    sandbox: SandboxHandle, drkit: Any
) -> None:
    ws = open_workspace(sandbox.stack)
    check = attachments_check(ws)
    assert check.status.value == "ok", check.detail
    rows = sandbox.psql("select count(*) from nchat_attachments")
    assert check.detail.startswith(f"{rows} objects")

    out = drkit("--output", "json", "backup", "s3", config=sandbox.config_path)
    assert out.code == 0, out.stderr
    [manifest] = out.json()
    assert manifest["kind"] == "objects"
    assert manifest["details"]["buckets"]["nchat-uploads"]["versions"] == rows


class _FailsAtCommit:
    """A repository that loses its connection just as the manifest is written."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        if key.endswith("/manifest.json"):
            raise RepositoryError("cannot reach S3 at http://offsite: connection refused")
        self.inner.put(key, data, overwrite=overwrite)


def test_an_interrupted_backup_is_resumed_and_verify_finds_what_is_missing(
    s3_server: S3Server, tmp_path: Path
) -> None:
    store = s3_server.store()
    bucket = s3_server.new_bucket("it-resume")
    for i in range(20):
        store.put(bucket, f"small/{i}", f"small {i}".encode(), "text/plain", {})
    store.put(bucket, "big", bytes(3 * 1024 * 1024), "application/octet-stream", {})  # parts, not a pack
    ws, service, _ = objects_stack(s3_server, tmp_path, bucket)

    with pytest.raises(RepositoryError):
        objects_backup.backup(replace(ws, repo=_FailsAtCommit(ws.repo)), service)
    assert list_backups(ws.repo, ws.stack.name, service.name).complete == ()
    resumed = objects_backup.backup(ws, service)
    assert resumed.manifest.details["new_versions"] == 0  # the interrupted run had copied them
    assert len(resumed.removed_incomplete) == 1
    assert resumed.manifest.details["buckets"][bucket]["versions"] == 21

    checks = verify_objects(ws, service, resumed.manifest, deep=False)  # re-reads every pack and part
    assert [c.status.value for c in checks] == ["ok"], checks
    [pack] = [k for k in ws.repo.list(f"{ws.stack.name}/{service.name}/objects/") if "/packs/" in k]
    ws.repo.delete(pack)
    [check] = verify_objects(ws, service, resumed.manifest)
    assert check.status.value == "failed" and "missing" in check.detail


def test_a_backup_naming_another_bucket_never_writes_there_least_of_all_the_repository(
    s3_server: S3Server, tmp_path: Path, drkit: Any
) -> None:
    """Bucket names in a backup come from the repository, which others can write. A forged
    manifest naming the repository's own bucket with an empty listing would, restored with
    --yes, make that bucket "equal to the backup": every repository object deleted."""
    from drkit.adapters.repository.codec import Codec, sha256
    from drkit.domain.backup import StoredFile
    from drkit.engines.core.workspace import open_workspace as open_ws
    from drkit.engines.objects.catalog import listing_stem

    store = s3_server.store()
    bucket = s3_server.new_bucket("it-named")
    store.put(bucket, "a", b"a", "text/plain", {})
    repo_bucket = s3_server.new_bucket("it-drkit-repo")
    (tmp_path / "access_key").write_text(s3_server.access_key)
    config = {
        "version": 1,
        "stack": "objects-it",
        "state_dir": str(tmp_path / "state"),
        "repositories": {
            "offsite": {
                "type": "s3",
                "endpoint": s3_server.url,
                "bucket": repo_bucket,
                "access_key": f"file:{tmp_path / 'access_key'}",
                "secret_key": f"file:{s3_server.secret_file}",
            }
        },
        "services": {"objects": s3_server.service_yaml(bucket)},
    }
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    ws = open_ws(load_stack(path))
    service = ws.stack.services["objects"]
    m = objects_backup.backup(ws, service).manifest

    empty = Codec().encode(b"")
    listing = f"{listing_stem(repo_bucket)}.zst"
    directory = f"objects-it/objects/backups/{m.backup_id}"
    ws.repo.put(f"{directory}/{listing}", empty)
    forged = replace(
        m,
        files=(StoredFile(listing, len(empty), sha256(empty)),),
        details={**m.details, "buckets": {repo_bucket: m.details["buckets"][bucket]}},
    )
    ws.repo.put(f"{directory}/manifest.json", forged.to_json())
    before = sorted(store.current(repo_bucket, ""))

    result = drkit("--yes", "restore", "objects", config=path)
    assert result.code != 0, result.stdout
    assert f"names bucket {repo_bucket}, which services.objects does not back up" in result.stderr
    assert sorted(store.current(repo_bucket, "")) == before

    # Named as the target by hand (--to), the repository's bucket is refused too.
    forged_ok = replace(forged, details=m.details, files=m.files)
    ws.repo.put(f"{directory}/manifest.json", forged_ok.to_json())
    to_repo = drkit("--yes", "restore", "objects", "--to", repo_bucket, config=path)
    assert to_repo.code == 2 and "holds drkit's repository 'offsite'" in to_repo.stderr
    assert sorted(store.current(repo_bucket, "")) == before
