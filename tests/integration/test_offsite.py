"""Off-site copies as the source procedures ask (STANDARD_IA, an archive tier after 90 days, a
year's minimum retention) and safe from whoever holds the primary's keys, on a real SeaweedFS
(4.48) with two identities: the bucket's admin, and a writer that `drkit sync` uses.

What SeaweedFS does itself, and is tested for real: storage classes (kept as written), tags,
versioning, Object Lock (it refuses a delete of a locked version: measured, see
docs/offsite.md). What it cannot do runs through `s3_aws_double.AwsDouble`, a proxy that
forwards everything to it and adds only AWS's answers: lifecycle transitions (SeaweedFS: 501),
the archive tier and RestoreObject (SeaweedFS: 405), an IAM policy without delete rights for
the writer (SeaweedFS's identities cannot say it), and, for one test, a server that accepts
retention without enforcing it (SeaweedFS 3.97, seaweedfs/seaweedfs#7194).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from drkit.adapters.postgres.client import connect
from drkit.adapters.s3.client import S3Endpoint, make_client
from drkit.config.loader import load_stack
from drkit.sandbox import s3_part
from drkit.sandbox.parts import PartContext
from tests.conftest import CliResult, run_drkit
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived
from tests.integration.s3_aws_double import AwsDouble
from tests.integration.s3_fixtures import S3Server

PREFIX = "copy"


@dataclass
class Offsite:
    """A private SeaweedFS, the AWS double in front of it, and the two identities' key files."""

    server: S3Server
    double: AwsDouble
    keys: dict[str, tuple[Path, Path]]  # identity -> (access key file, secret key file)

    def raw(self, who: str = "admin") -> Any:
        """A client straight to SeaweedFS (not through the double)."""
        access, secret = (p.read_text().strip() for p in self.keys[who])
        return make_client(S3Endpoint(self.server.url, access, secret))


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    """PostgreSQL archiving its WAL, with two base backups (the older one is what a retention
    of one would drop)."""
    handle = make_sandbox("drkit-it-offsite-", services=("postgres",))
    try:
        for _ in range(2):
            taken = run_drkit("--output", "json", "backup", "postgres", config=handle.config_path)
            assert taken.code == 0, taken.stderr
        handle.psql("insert into nchat_messages (channel_id, content) select id, 'late' from nchat_channels")
        switch_and_wait_archived(handle.dsn)
        yield handle
    finally:
        destroy_sandbox(handle)


@pytest.fixture(scope="module")
def offsite() -> Iterator[Offsite]:
    directory = Path(tempfile.mkdtemp(prefix="drkit-offsite-s3-", dir="/tmp"))
    directory.chmod(0o755)  # PostgreSQL's user runs wal-fetch with these key files
    entry = s3_part.prepare(PartContext(directory, None, "offsite"))
    keys = {}
    identities = []
    for who, actions in (("admin", ["Admin", "Read", "Write", "List", "Tagging"]),
                         ("writer", ["Read", "Write", "List", "Tagging"])):  # fmt: skip
        secret = uuid.uuid4().hex
        access, secret_file = directory / f"{who}-access", directory / f"{who}-secret"
        access.write_text(f"{who}-{uuid.uuid4().hex[:6]}\n")
        secret_file.write_text(secret + "\n")
        keys[who] = (access, secret_file)
        credentials = [{"accessKey": access.read_text().strip(), "secretKey": secret}]
        identities.append({"name": who, "credentials": credentials, "actions": actions})
    (directory / "s3" / "identities.json").write_text(json.dumps({"identities": identities}))
    entry.config["access_key"] = f"file:{keys['admin'][0]}"
    entry.config["secret_key"] = f"file:{keys['admin'][1]}"
    config = {"version": 1, "stack": "offsite", "state_dir": str(directory / "state"),
              "repositories": {"local": {"type": "fs", "path": str(directory / "repo")}},
              "services": {entry.name: entry.config}}  # fmt: skip
    (directory / "stack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    server = S3Server(directory, load_stack(directory / "stack.yaml").services[entry.name], keys["admin"][1])
    secrets = {p[0].read_text().strip(): p[1].read_text().strip() for p in keys.values()}
    double = AwsDouble(server.url, secrets, deny_delete=frozenset({keys["writer"][0].read_text().strip()}))
    try:
        server.start()
        double.start()
        yield Offsite(server, double, keys)
    finally:
        double.stop() if hasattr(double, "server") else None
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _config(
    box: SandboxHandle,
    off: Offsite,
    bucket: str,
    *,
    endpoint: str | None = None,
    prove_with: bool = True,
    lock: bool = True,
    only: bool = False,
) -> Path:
    """The sandbox's stack.yaml with an off-site repository in `bucket`, written with the
    writer's keys (only: the copy is the sole repository, as a restore elsewhere has it)."""
    access, secret = off.keys["writer"]
    repo: dict[str, Any] = {
        "type": "s3",
        "endpoint": endpoint or off.double.url,
        "bucket": bucket,
        "prefix": PREFIX,
        "access_key": f"file:{access}",
        "secret_key": f"file:{secret}",
        "storage_class": "STANDARD_IA",
        "lifecycle": {"transitions": [{"after": "90d", "storage_class": "GLACIER"}]},
        "min_retention": "365d",
        "archive_restore": {"tier": "Standard", "days": 1, "poll": "1s", "wait": "5m"},
    }
    if lock:
        repo["object_lock"] = {"mode": "compliance", "retain": "1d"}
        if prove_with:
            admin_access, admin_secret = off.keys["admin"]
            repo["object_lock"]["prove_with"] = {"access_key": f"file:{admin_access}",
                                                 "secret_key": f"file:{admin_secret}"}  # fmt: skip
    doc = yaml.safe_load(box.config_path.read_text())
    doc["repository"] = doc.get("repository") or next(iter(doc["repositories"]))
    doc["repositories"]["offsite"] = repo
    if only:
        doc["repositories"] = {"offsite": repo}
        doc["repository"] = "offsite"
    keep_one = {"keep_last": 1, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}
    policy = doc["services"]["postgres"].setdefault("backup", {})
    policy.update(retention=keep_one, wal_retention="1s")  # no PITR window: the older backup is unkept
    path = box.dir / f"stack-{bucket}{'-only' if only else ''}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _setup(off: Offsite, config: Path, *extra: str) -> CliResult:
    access, secret = off.keys["admin"]
    keys = ("--access-key", f"file:{access}", "--secret-key", f"file:{secret}")
    return run_drkit("--output", "json", "offsite", "setup", "--create-bucket", *keys, *extra, config=config)


def _bucket() -> str:
    return f"offsite-{uuid.uuid4().hex[:8]}"


def _keys(client: Any, bucket: str) -> list[str]:
    return [
        o["Key"]
        for p in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in p.get("Contents", [])
    ]


def test_the_copy_is_stored_as_configured_proven_immutable_and_deleted_by_no_one(
    box: SandboxHandle, offsite: Offsite
) -> None:
    bucket = _bucket()
    config = _config(box, offsite, bucket)
    setup = _setup(offsite, config)
    assert setup.code == 0, setup.stdout + setup.stderr
    steps = {s["name"]: s["status"] for s in setup.json()["steps"]}
    assert steps == {
        "bucket": "applied",
        "versioning": "ok",
        "object lock": "applied",
        "lifecycle": "applied",
    }

    synced = run_drkit("--output", "json", "sync", "--to", "offsite", config=config)
    assert synced.code == 0, synced.stdout + synced.stderr
    report = synced.json()["repositories"][0]
    assert len(report["backups"]) == 2 and report["storage_class"] == "STANDARD_IA"
    assert report["immutable"] is True and report["lock"]["verdict"] == "enforced", report["lock"]

    # What SeaweedFS holds: STANDARD_IA, locked by the bucket's default retention; bulk data
    # tagged for the archive tier, manifests not (they must stay readable).
    admin = offsite.raw("admin")
    keys = _keys(admin, bucket)
    part = next(k for k in keys if "/postgres/backups/" in k and ".tar." in k)
    manifest = next(k for k in keys if k.endswith("/manifest.json"))
    head = admin.head_object(Bucket=bucket, Key=part)
    assert head["StorageClass"] == "STANDARD_IA" and head["ObjectLockMode"] == "COMPLIANCE"
    assert admin.get_object_tagging(Bucket=bucket, Key=part)["TagSet"] == [
        {"Key": "drkit-tier", "Value": "archive"}
    ]
    assert admin.get_object_tagging(Bucket=bucket, Key=manifest)["TagSet"] == []

    # sync itself sent no DELETE (the canary proof's, with the prover's keys, aside)
    deletes = [path for method, path, _ in offsite.double.log if method == "DELETE" and f"/{bucket}/" in path]
    assert deletes and all("/.drkit-lock-canary/" in p for p in deletes)

    # No one deletes a copy: not the writer (no delete rights), not the admin (the lock).
    writer = make_client(
        S3Endpoint(offsite.double.url, *(p.read_text().strip() for p in offsite.keys["writer"]))
    )
    with pytest.raises(ClientError, match="AccessDenied"):
        writer.delete_object(Bucket=bucket, Key=part, VersionId=head["VersionId"])
    with pytest.raises(ClientError, match="AccessDenied"):
        admin.delete_object(Bucket=bucket, Key=part, VersionId=head["VersionId"])
    assert admin.head_object(Bucket=bucket, Key=part, VersionId=head["VersionId"])["ContentLength"] > 0
    status = run_drkit("--output", "json", "status", config=config)
    copies = next(s["copies"] for s in status.json()["services"] if s["service"] == "postgres")
    assert copies["immutable"] == 1, copies

    # prune there keeps what is younger than min_retention, which the primary would drop
    primary = run_drkit("--output", "json", "--dry-run", "prune", "postgres", config=config)
    there = run_drkit(
        "--output", "json", "--dry-run", "prune", "postgres", "--repo", "offsite", config=config
    )
    assert primary.code == 0 and there.code == 0, primary.stderr + there.stderr
    assert len(primary.json()["services"][0]["drop"]) == 1
    plan = there.json()["services"][0]
    assert plan["drop"] == [] and [d["rule"] for d in plan["keep"]][-1] == "min_retention"


def test_without_delete_rights_the_lock_is_unproven_and_sync_says_so(
    box: SandboxHandle, offsite: Offsite
) -> None:
    bucket = _bucket()
    config = _config(box, offsite, bucket, prove_with=False)
    assert _setup(offsite, config).code == 0
    synced = run_drkit("--output", "json", "sync", "--to", "offsite", config=config)
    assert synced.code == 3, synced.stdout + synced.stderr
    report = synced.json()["repositories"][0]
    assert len(report["backups"]) == 2, "the copy is made all the same"
    assert report["immutable"] is False and report["lock"]["verdict"] == "unproven"
    assert "prove_with" in report["lock"]["detail"]


def test_a_server_that_accepts_retention_and_deletes_anyway_is_not_called_immutable(
    box: SandboxHandle, offsite: Offsite
) -> None:
    lax = AwsDouble(offsite.server.url, offsite.double.secrets, enforce_lock=False).start()
    try:
        bucket = _bucket()
        config = _config(box, offsite, bucket, endpoint=lax.url)
        assert _setup(offsite, config).code == 0
        synced = run_drkit("sync", "--to", "offsite", config=config)
        assert synced.code == 3, synced.stdout + synced.stderr
        assert (
            "NOT immutable (not-enforced)" in synced.stdout
            and "does not enforce Object Lock" in synced.stdout
        )
        proved = run_drkit("--output", "json", "offsite", "prove", config=config)
        assert proved.code == 3 and proved.json()["verdict"] == "not-enforced"
    finally:
        lax.stop()


def test_a_restore_from_the_archive_tier_requests_the_restores_and_waits(
    box: SandboxHandle, offsite: Offsite
) -> None:
    bucket = _bucket()
    config = _config(box, offsite, bucket)
    assert _setup(offsite, config).code == 0
    assert run_drkit("sync", "--to", "offsite", config=config).code == 0
    expected = box.psql("select count(*) from nchat_messages")

    moved = offsite.double.age(offsite.raw("admin"), bucket, days=91)  # as AWS would after 90 days
    assert any("/wal/" in k for k in moved) and any(".tar." in k for k in moved)
    assert not any(k.endswith(".json") for k in moved), "manifests stay readable"

    only = _config(box, offsite, bucket, only=True)
    planned = run_drkit(
        "--output", "json", "--dry-run", "offsite", "retrieve", "--service", "postgres", config=only
    )
    assert planned.code == 0, planned.stderr
    assert planned.json()["archived"] > 0 and planned.json()["thaw"] is None
    assert not [q for m, _, q in offsite.double.log if m == "POST" and "restore" in q]

    dest = restore_dir(box.dir, f"from-archive-{uuid.uuid4().hex[:6]}", box.box.os_user)
    restored = run_drkit(
        "--output", "json", "restore", "postgres", "--to", str(dest), "--keep-running", config=only
    )
    try:
        assert restored.code == 0, restored.stdout + restored.stderr
        assert "restore request(s) sent" in restored.stderr and "readable after" in restored.stderr
        port = json.loads(restored.stdout[restored.stdout.index("{") :])["port"]
        with connect(query_dsn(port)) as conn:
            row = conn.execute("select count(*) from nchat_messages").fetchone()
        assert row is not None and row[0] == expected
    finally:
        stop_restored(dest, box.box.os_user)
    requests = [p for m, p, q in offsite.double.log if m == "POST" and "restore" in q and f"/{bucket}/" in p]
    assert requests, "the archived objects were restored through RestoreObject"
