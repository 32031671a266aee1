"""Locks and leases on real servers: two hosts (two `drkit backup` processes with different
DRKIT_HOST_ID and state directories) sharing one S3 repository (SeaweedFS); a backup and a
restore of one service; racing wal-push of two different files under one name on S3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.fs import FsRepository
from drkit.adapters.repository.s3 import S3Repository
from drkit.domain.backup import MANIFEST_NAME, Manifest
from drkit.engines.core.layout import lease_key
from drkit.engines.core.lease import Lease
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.infra.wait import wait_for
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import restore_dir, switch_and_wait_archived
from tests.integration.s3_fixtures import S3Server
from tests.unit.test_wal_push_race import race, segment_name, stored_matches_recorded

pytestmark = pytest.mark.integration

BACKUPS = "sandbox/postgres/backups/"


def host_config(sandbox: SandboxHandle, where: Path, repository: dict[str, Any], *, slow: bool) -> Path:
    """The sandbox's PostgreSQL as one host sees it: its own state directory (so its own
    locks), the given repository. `slow`: small parts and a throttled stream."""
    config = yaml.safe_load(sandbox.config_path.read_text())
    postgres = config["services"]["postgres"]
    if slow:
        postgres["backup"] = {**postgres.get("backup", {}), "part_size": "256KiB", "max_rate": "2M"}
    where.mkdir(parents=True, exist_ok=True)
    stack = {
        "version": 1,
        "stack": "sandbox",
        "state_dir": str(where / "state"),
        "repositories": {"shared": repository},
        "services": {"postgres": postgres},
    }
    path = where / "stack.yaml"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    return path


def s3_repository(server: S3Server, bucket: str, prefix: str) -> dict[str, Any]:
    spec = server.repository_spec(bucket, prefix=prefix)
    return {
        "type": "s3",
        "endpoint": spec.endpoint,
        "bucket": bucket,
        "prefix": prefix,
        "access_key": f"file:{server.dir / 'access_key_for_tests'}",
        "secret_key": f"file:{server.secret_file}",
    }


class PausedBackup:
    """`drkit backup postgres` as host `host`, stopped (SIGSTOP, with its pg_basebackup) once
    its first part is in the repository, until `resume()`."""

    def __init__(self, config: Path, host: str, first_part: Callable[[], str | None]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "drkit", "--config", str(config), "backup", "postgres"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DRKIT_HOST_ID": host},
            start_new_session=True,
        )
        self.first_part: str = wait_for(first_part, timeout=120, what=f"{host}'s first part")
        os.killpg(self.proc.pid, signal.SIGSTOP)
        assert self.proc.poll() is None, "the backup finished before it could be paused"

    def resume(self) -> tuple[int, str, str]:
        os.killpg(self.proc.pid, signal.SIGCONT)
        out, err = self.proc.communicate(timeout=300)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def shared_bucket(s3_server: S3Server) -> Iterator[str]:
    (s3_server.dir / "access_key_for_tests").write_text(s3_server.access_key)
    yield s3_server.new_bucket("it-leases")


def test_two_hosts_on_one_s3_repository_never_delete_each_others_running_backup(
    sandbox: SandboxHandle, s3_server: S3Server, shared_bucket: str, tmp_path: Path, drkit: Any
) -> None:
    prefix = f"shared-{uuid.uuid4().hex[:8]}"
    repository = s3_repository(s3_server, shared_bucket, prefix)
    host_a = host_config(sandbox, tmp_path / "host-a", repository, slow=True)
    host_b = host_config(sandbox, tmp_path / "host-b", repository, slow=False)
    repo = S3Repository(s3_server.repository_spec(shared_bucket, prefix=prefix))

    # the leftovers of a backup a third host started long ago and never finished
    dead = "20200101T000000Z-base"
    repo.put(f"{BACKUPS}{dead}/base.00000.tar.zst", b"half a backup")
    long_ago = datetime.now(UTC) - timedelta(days=1)
    gone = Lease("host-gone", 4242, "run-gone", dead, long_ago, long_ago + timedelta(minutes=5))
    repo.put(lease_key("sandbox", "postgres", dead), gone.to_json())

    def first_part() -> str | None:
        return next((k for k in repo.list(BACKUPS) if ".tar." in k and dead not in k), None)

    a = PausedBackup(host_a, "host-a", first_part)
    try:
        a_id = a.first_part.split("/")[3]
        a_keys = set(repo.list(f"{BACKUPS}{a_id}/"))
        lease = Lease.from_json(repo.get(lease_key("sandbox", "postgres", a_id)))
        assert (lease.host, lease.pid) == ("host-a", a.proc.pid)

        b = drkit("--output", "json", "backup", "postgres", config=host_b, env={"DRKIT_HOST_ID": "host-b"})
        assert b.code == 0, b.stderr
        assert set(repo.list(f"{BACKUPS}{a_id}/")) >= a_keys, "host B deleted host A's running backup"
        assert not repo.list(f"{BACKUPS}{dead}/"), "the expired lease's leftovers were not cleaned"

        code, _out, err = a.resume()
    finally:
        a.kill()
    assert code == 0, err
    manifest = Manifest.from_json(repo.get(f"{BACKUPS}{a_id}/{MANIFEST_NAME}"))
    stored = {key.rsplit("/", 1)[1] for key in repo.list(f"{BACKUPS}{a_id}/")}
    assert stored == {f.name for f in manifest.files} | {MANIFEST_NAME}  # and the lease is gone
    assert a.first_part.rsplit("/", 1)[1] in stored  # written before host B ran, still there
    for f in manifest.files:  # every part is the one host A wrote (the WAL is not in this bucket)
        assert sha256(repo.get(f"{BACKUPS}{a_id}/{f.name}")) == f.sha256, f.name
    listed = drkit("--output", "json", "backups", "list", "--service", "postgres", config=host_b)
    assert listed.code == 0, listed.stderr
    report = listed.json()
    assert a_id in {b["backup_id"] for b in report["backups"]} and report["incomplete"] == []


@pytest.mark.parametrize("private_sandbox", [{}], indirect=True)
def test_a_restore_is_refused_while_a_backup_of_the_service_runs_naming_it(
    private_sandbox: SandboxHandle, tmp_path: Path, drkit: Any
) -> None:
    box = private_sandbox
    own = yaml.safe_load(box.config_path.read_text())
    repository = own["repositories"][own.get("repository") or next(iter(own["repositories"]))]
    config = host_config(box, tmp_path / "host", repository, slow=True)
    first = drkit("backup", "postgres", config=config)
    assert first.code == 0, first.stderr
    switch_and_wait_archived(box.dsn)

    repo = FsRepository(repository["path"])
    done = set(repo.list(BACKUPS))

    def first_part() -> str | None:
        return next((k for k in repo.list(BACKUPS) if ".tar." in k and k not in done), None)

    running = PausedBackup(config, "host-a", first_part)
    try:
        target = restore_dir(box.dir, "while-backing-up", box.stack.services["postgres"].runtime.os_user)
        refused = drkit("restore", "postgres", "--to", str(target), config=config)
        assert refused.code == 1, refused.stdout + refused.stderr
        line = refused.stderr.strip().splitlines()[-1]
        assert "postgres is busy: backup (pid " in line and f"pid {running.proc.pid} on " in line, line
        assert "since " in line, line
        assert not target.exists()
        code, _out, err = running.resume()
    finally:
        running.kill()
    assert code == 0, err
    lock = Path(yaml.safe_load(config.read_text())["state_dir"]) / "locks" / "postgres.lock"
    assert oct(lock.stat().st_mode & 0o777) == "0o600"


def test_racing_wal_pushes_on_s3_have_one_winner_whose_hash_is_recorded(
    s3_server: S3Server, shared_bucket: str
) -> None:
    spec = s3_server.repository_spec(shared_bucket, prefix=f"wal-race-{uuid.uuid4().hex[:8]}")
    archives = [WalArchive(S3Repository(spec), "sandbox", "postgres", Codec()) for _ in range(2)]
    for n in range(30):
        name = segment_name(n + 1)
        contents = [b"cluster-one" * 512, b"cluster-two" * 512]
        results = race(archives, name, contents)
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1, f"round {n}: {results}"
        assert stored_matches_recorded(archives[0], name), f"round {n}: the sidecar does not match"
