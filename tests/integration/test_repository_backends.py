"""The Repository port, behaviour by behaviour, on both backends: a directory and a bucket of
a real S3 server (SeaweedFS). Then the S3 backend's failures: server down, wrong
credentials, missing bucket, and the server dying in the middle of a base backup."""

from __future__ import annotations

import builtins
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.adapters.repository import open_repository
from drkit.adapters.repository.fs import FsRepository
from drkit.adapters.repository.port import Repository
from drkit.adapters.repository.s3 import S3Repository
from drkit.domain.errors import RepositoryError
from drkit.infra.ports import free_port
from drkit.infra.wait import wait_for
from tests.integration.conftest import SandboxHandle
from tests.integration.s3_fixtures import S3Server, destroy_s3_server, make_s3_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket("it-repo")


@pytest.fixture(params=["fs", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    if request.param == "fs":
        return FsRepository(tmp_path / "repo")
    server: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("repo_bucket")
    # A prefix of its own per test: tests share the bucket, never each other's keys.
    return S3Repository(server.repository_spec(bucket, prefix=f"tests/{uuid.uuid4().hex[:8]}"))


def test_put_then_get_returns_the_same_bytes(repo: Repository) -> None:
    repo.put("stack/pg/backups/b1/base.00000.tar.zst", b"\x00part\xff")
    repo.put("stack/pg/backups/b1/empty", b"")
    assert repo.get("stack/pg/backups/b1/base.00000.tar.zst") == b"\x00part\xff"
    assert repo.get("stack/pg/backups/b1/empty") == b""


def test_exists_and_size(repo: Repository) -> None:
    repo.put("a/b/blob", b"12345")
    assert repo.exists("a/b/blob")
    assert not repo.exists("a/b/other")
    assert repo.size("a/b/blob") == 5
    with pytest.raises(FileNotFoundError):
        repo.size("a/b/other")


def test_list_is_sorted_and_stays_under_the_prefix(repo: Repository) -> None:
    for key in ("s/wal/2", "s/wal/1", "s/walrus/x", "s/backups/b/manifest.json"):
        repo.put(key, b"x")
    assert repo.list("s/wal/") == ["s/wal/1", "s/wal/2"]
    assert repo.list("s/wal") == ["s/wal/1", "s/wal/2"]  # a prefix is a directory, not a stem
    assert repo.list("s/") == ["s/backups/b/manifest.json", "s/wal/1", "s/wal/2", "s/walrus/x"]
    assert repo.list("nothing/here/") == []


def test_entries_give_size_and_time(repo: Repository) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    repo.put("e/one", b"1")
    repo.put("e/three", b"333")
    entries = repo.entries("e/")
    assert [(e.key, e.size) for e in entries] == [("e/one", 1), ("e/three", 3)]
    for entry in entries:
        assert entry.modified.tzinfo is not None
        assert before <= entry.modified <= datetime.now(UTC) + timedelta(minutes=1)


def test_delete_removes_and_tolerates_a_missing_key(repo: Repository) -> None:
    repo.put("d/x", b"x")
    repo.delete("d/x")
    assert not repo.exists("d/x")
    assert repo.list("d/") == []
    repo.delete("d/never-there")


def _interrupted_write(repo: Repository, key: str) -> None:
    """What a writer killed mid-put leaves: a temporary file beside the key (directory),
    an upload that was started and never completed (S3)."""
    if isinstance(repo, FsRepository):
        path = repo.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / f".{path.name}.abc123.tmp").write_bytes(b"half a part")
        return
    assert isinstance(repo, S3Repository)
    full = repo._key(key)
    upload = repo.client.create_multipart_upload(Bucket=repo.bucket, Key=full)
    repo.client.upload_part(
        Bucket=repo.bucket, Key=full, UploadId=upload["UploadId"], PartNumber=1, Body=b"half a part"
    )


def _leftovers(repo: Repository, prefix: str) -> list[str]:
    if isinstance(repo, FsRepository):
        base = repo.root / prefix
        return sorted(str(p.relative_to(repo.root)) for p in base.rglob("*")) if base.exists() else []
    assert isinstance(repo, S3Repository)
    uploads = repo.client.list_multipart_uploads(Bucket=repo.bucket, Prefix=repo._key(prefix) + "/")
    return sorted(u["Key"] for u in uploads.get("Uploads", []))


def test_delete_tree_removes_blobs_and_interrupted_writes_under_the_prefix_only(repo: Repository) -> None:
    repo.put("s/backups/b1/base.00000.tar.zst", b"part")
    repo.put("s/backups/b1/sub/tarindex.json", b"{}")
    repo.put("s/backups/b10/manifest.json", b"kept: same stem, other backup")
    repo.put("s/wal/000000010000000000000001", b"kept")
    _interrupted_write(repo, "s/backups/b1/base.00001.tar.zst")
    assert _leftovers(repo, "s/backups/b1") != []

    repo.delete_tree("s/backups/b1")

    assert repo.list("s/backups/b1/") == []
    assert _leftovers(repo, "s/backups/b1") == []
    assert repo.list("s/") == ["s/backups/b10/manifest.json", "s/wal/000000010000000000000001"]
    repo.delete_tree("s/backups/never-there")  # nothing to delete is not an error


def test_overwrite_replaces_by_default(repo: Repository) -> None:
    repo.put("o/k", b"old")
    repo.put("o/k", b"new")
    assert repo.get("o/k") == b"new"


def test_overwrite_false_refuses_an_existing_key_and_keeps_it(repo: Repository) -> None:
    repo.put("o/manifest.json", b"first")
    with pytest.raises(FileExistsError):
        repo.put("o/manifest.json", b"second", overwrite=False)
    assert repo.get("o/manifest.json") == b"first"
    repo.put("o/fresh", b"ok", overwrite=False)
    assert repo.get("o/fresh") == b"ok"


def test_get_of_a_missing_key_is_file_not_found(repo: Repository) -> None:
    with pytest.raises(FileNotFoundError):
        repo.get("missing/key")


def test_invalid_keys_are_refused(repo: Repository) -> None:
    for key in ("", "a/../b", "./x"):
        with pytest.raises(RepositoryError, match="invalid repository key"):
            repo.put(key, b"x")


def test_check_writable_passes_and_leaves_nothing(repo: Repository) -> None:
    repo.check_writable()
    assert repo.list("") == []


def test_a_large_blob_round_trips(repo: Repository) -> None:
    """Above 64 MiB the S3 backend switches to a multipart upload."""
    blob = (bytes(range(256)) * 4096) * 66  # 66 MiB
    repo.put("big/blob", blob)
    assert repo.size("big/blob") == len(blob)
    assert repo.get("big/blob") == blob


def test_the_registry_opens_an_s3_repository(s3_server: S3Server, repo_bucket: str) -> None:
    opened = open_repository(s3_server.repository_spec(repo_bucket, prefix="registry"))
    assert isinstance(opened, S3Repository)
    assert opened.location == f"s3://{repo_bucket}/registry at {s3_server.url}"


def _one_clear_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    assert "botocore" not in text.lower() and "Traceback" not in text
    return text


def test_a_server_that_is_down_is_one_clear_error(s3_server: S3Server) -> None:
    port = free_port()
    spec = replace(s3_server.repository_spec("drkit-repo"), endpoint=f"http://127.0.0.1:{port}")
    down = S3Repository(spec, max_attempts=2)
    calls: list[Any] = [
        down.check_writable,
        lambda: down.get("k"),
        lambda: down.put("k", b"x"),
        lambda: down.list("p/"),
        lambda: down.exists("k"),
    ]
    for call in calls:
        with pytest.raises(RepositoryError) as caught:
            call()
        text = _one_clear_line(caught.value)
        assert text.startswith(f"cannot reach S3 at http://127.0.0.1:{port}: connection refused")


def test_wrong_credentials_are_one_clear_error(s3_server: S3Server, repo_bucket: str) -> None:
    spec = replace(s3_server.repository_spec(repo_bucket), secret_key="not-the-secret")
    with pytest.raises(RepositoryError) as caught:
        S3Repository(spec, max_attempts=1).check_writable()
    text = _one_clear_line(caught.value)
    assert s3_server.url in text and "credentials" in text


def test_a_missing_bucket_is_named(s3_server: S3Server) -> None:
    with pytest.raises(RepositoryError, match="bucket no-such-bucket-here does not exist"):
        S3Repository(s3_server.repository_spec("no-such-bucket-here")).check_writable()


# --- the S3 server dies in the middle of a base backup ----------------------------------


@pytest.fixture
def doomed_s3() -> Iterator[S3Server]:
    server = make_s3_server("drkit-s3-doomed-")
    yield server
    destroy_s3_server(server)


def _stack_with_s3_repository(sandbox: SandboxHandle, server: S3Server, bucket: str, where: Path) -> Path:
    """The sandbox's PostgreSQL, backed up into a bucket: small parts, a slow stream, so the
    server can be killed with most of the backup still to come."""
    config = yaml.safe_load(sandbox.config_path.read_text())
    postgres = config["services"]["postgres"]
    postgres["backup"] = {**postgres.get("backup", {}), "part_size": "256KiB", "max_rate": "2M"}
    spec = server.repository_spec(bucket, prefix="offsite")
    stack = {
        "version": 1,
        "stack": "sandbox",
        "state_dir": str(where / "state"),
        "repositories": {
            "offsite": {
                "type": "s3",
                "endpoint": spec.endpoint,
                "bucket": bucket,
                "prefix": "offsite",
                "access_key": f"file:{where / 'access_key'}",
                "secret_key": f"file:{server.secret_file}",
            }
        },
        "services": {"postgres": postgres},
    }
    (where / "access_key").write_text(server.access_key)
    path = where / "stack.yaml"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    return path


def test_s3_dying_mid_backup_fails_clearly_and_leaves_no_backup(
    sandbox: SandboxHandle, doomed_s3: S3Server, tmp_path: Path, drkit: Any
) -> None:
    bucket = doomed_s3.new_bucket("it-offsite")
    config = _stack_with_s3_repository(sandbox, doomed_s3, bucket, tmp_path)
    offsite = S3Repository(doomed_s3.repository_spec(bucket, prefix="offsite"))
    backup = subprocess.Popen(
        [sys.executable, "-m", "drkit", "--config", str(config), "backup", "postgres"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_part = wait_for(
            lambda: [k for k in offsite.list("sandbox/postgres/backups/") if ".tar." in k] or None,
            timeout=60,
            what="the first part of the base backup in the bucket",
        )
        assert backup.poll() is None, "the backup finished before the server could be stopped"
        pid = doomed_s3.runtime().pid()
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        out, err = backup.communicate(timeout=120)
    finally:
        if backup.poll() is None:
            backup.kill()
            backup.wait(timeout=30)
    assert first_part
    assert backup.returncode == 1, (out, err)
    message = err.strip().splitlines()[-1] if err.strip() else ""
    assert "S3" in message and doomed_s3.url in message, err
    assert "Traceback" not in err

    doomed_s3.start()
    listed = drkit("--output", "json", "backups", "list", "--service", "postgres", config=config)
    assert listed.code == 0, listed.stderr
    report = listed.json()
    assert report["backups"] == []
    assert builtins.len(report["incomplete"]) == 1  # its parts, which the next run removes


# --- S3 specifics: a missing bucket, killed uploads, conditional renewals -----------------


def test_a_missing_bucket_is_the_repository_missing_never_an_absent_key(s3_server: S3Server) -> None:
    """S3 answers a HEAD in a bucket that does not exist with a bare 404: read as "no such
    key", wal-fetch would tell PostgreSQL the segment is absent and recovery would end early."""
    from drkit.adapters.repository.codec import Codec
    from drkit.engines.postgres.wal.archive import WalArchive

    repo = S3Repository(s3_server.repository_spec(f"gone-{uuid.uuid4().hex[:8]}", prefix="nchat"))
    for probe in (repo.exists, repo.size, repo.get):
        with pytest.raises(
            RepositoryError, match=r"the repository is missing: bucket gone-\w+ does not exist"
        ):
            probe("sandbox/postgres/wal/00000001/000000010000000000000001.zst")
    archive = WalArchive(repo, "sandbox", "postgres", Codec())
    with pytest.raises(RepositoryError, match="the repository is missing"):
        archive.fetch("000000010000000000000001", Path("/nonexistent/never-written"))


def test_a_killed_upload_is_never_listed_and_prune_aborts_it_once_a_day_old(
    s3_server: S3Server, repo_bucket: str, tmp_path: Path
) -> None:
    from drkit.config.loader import load_stack
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.prune import prune
    from drkit.engines.stack.verify import verify_repository
    from tests.prune_fakes import FixedClock

    prefix = f"tests/{uuid.uuid4().hex[:8]}"
    spec = s3_server.repository_spec(repo_bucket, prefix=prefix)
    (tmp_path / "access_key").write_text(s3_server.access_key)
    config = {
        "version": 1,
        "stack": "st",
        "state_dir": str(tmp_path / "state"),
        "repositories": {
            "offsite": {
                "type": "s3",
                "endpoint": spec.endpoint,
                "bucket": repo_bucket,
                "prefix": prefix,
                "access_key": f"file:{tmp_path / 'access_key'}",
                "secret_key": f"file:{s3_server.secret_file}",
            }
        },
        "services": {"cache": {"kind": "redis", "url": "redis://127.0.0.1:1/0"}},
    }
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(config))
    stack = load_stack(tmp_path / "stack.yaml")
    ws = open_workspace(stack)
    ws.repo.put("st/cache/backups/b1/dump.rdb.zst", b"a whole blob")
    client = s3_server.client()
    key = "st/cache/backups/b2/dump.rdb.00000.zst"  # a killed `put` above 64 MiB
    upload = client.create_multipart_upload(Bucket=repo_bucket, Key=f"{prefix}/{key}")
    client.upload_part(
        Bucket=repo_bucket, Key=f"{prefix}/{key}", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024
    )

    assert ws.repo.list("st/") == ["st/cache/backups/b1/dump.rdb.zst"]
    assert not ws.repo.exists(key)
    [stray] = ws.repo.strays("st/")
    assert (stray.key, stray.kind.value) == (key, "upload")
    found = verify_repository(ws).strays
    assert [(s.key, s.kind.value) for s in found] == [(key, "upload")]

    service = stack.services["cache"]
    young = prune(replace(ws, clock=FixedClock(datetime.now(UTC))), service, dry_run=False)
    assert young.leftovers == () and ws.repo.strays("st/")  # a write may still be running
    later = replace(ws, clock=FixedClock(datetime.now(UTC) + timedelta(days=2)))
    swept = prune(later, service, dry_run=False)
    assert [(item.key, item.to_dict()["rule"]) for item in swept.leftovers] == [(key, "leftover")]
    assert ws.repo.strays("st/") == []
    uploads = client.list_multipart_uploads(Bucket=repo_bucket, Prefix=f"{prefix}/").get("Uploads", [])
    assert uploads == []


def test_replace_if_on_s3_never_creates_and_never_overwrites_what_it_did_not_expect(
    s3_server: S3Server, repo_bucket: str
) -> None:
    repo = S3Repository(s3_server.repository_spec(repo_bucket, prefix=f"tests/{uuid.uuid4().hex[:8]}"))
    key = "s/pg/backups/b1/lease.json"
    assert not repo.replace_if(key, b"renewed", expected=b"ours")
    assert not repo.exists(key)
    repo.put(key, b"theirs")
    assert not repo.replace_if(key, b"renewed", expected=b"ours")
    assert repo.get(key) == b"theirs"
    repo.put(key, b"ours")
    assert repo.replace_if(key, b"renewed", expected=b"ours")
    assert repo.get(key) == b"renewed"
