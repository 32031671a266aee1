"""The service lock (host-local, 0600, names its holder) and the repository lease (what
protects a backup in progress from another host's cleanup), on a filesystem repository."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.backup import BackupKind, backup_id_order
from drkit.domain.errors import LockedError, OperationError
from drkit.domain.stack import RepositorySpec, RuntimeSpec, Service, Stack
from drkit.engines.core.commit import backup_lock, clean_incomplete, unique_id
from drkit.engines.core.layout import lease_key, lock_name
from drkit.engines.core.lease import Lease, LeaseKeeper, host_id
from drkit.engines.core.workspace import Workspace
from drkit.infra import locks
from drkit.infra.clock import SystemClock
from drkit.infra.wait import wait_for

HOLD = """
import sys
from pathlib import Path
from drkit.infra import locks
with locks.exclusive(Path(sys.argv[1]), sys.argv[2], sys.argv[3]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding postgres's lock for a backup."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "locks"), lock_name("postgres"), "backup"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.communicate(timeout=30)


def test_restore_is_refused_while_a_backup_holds_the_service_and_the_holder_is_named(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with (
        pytest.raises(LockedError) as caught,
        locks.exclusive(tmp_path / "locks", lock_name("postgres"), "restore"),
    ):
        pytest.fail("the restore ran beside a running backup")
    message = caught.value.message
    assert message.startswith("postgres is busy: backup ")
    assert f"pid {holder.pid} on {socket.gethostname()}" in message
    assert "since 20" in message and str(tmp_path / "locks" / "postgres.lock") in message


def test_the_lock_is_free_again_once_its_holder_is_gone(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    holder.communicate(timeout=30)
    with locks.exclusive(tmp_path / "locks", lock_name("postgres"), "restore"):
        pass


def test_lock_files_are_0600_even_when_an_older_one_was_wider(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    (lock_dir / "redis.lock").write_text("")
    os.chmod(lock_dir / "redis.lock", 0o666)
    old = os.umask(0)
    try:
        with locks.exclusive(lock_dir, lock_name("redis"), "backup"), locks.exclusive(lock_dir, "pg", "x"):
            pass
    finally:
        os.umask(old)
    for name in ("redis.lock", "pg.lock"):
        assert stat.S_IMODE((lock_dir / name).stat().st_mode) == 0o600, name


def test_a_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    (lock_dir / "pg.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError), locks.exclusive(lock_dir, "pg", "backup"):
        pass
    assert not (tmp_path / "elsewhere").exists()


def workspace(tmp_path: Path, host: str | None = None) -> Workspace:
    service = Service(name="pg", kind="postgres", runtime=RuntimeSpec(type="local", data_dir=str(tmp_path)))
    stack = Stack(
        name="s",
        services={"pg": service},
        repositories={"local": RepositorySpec(name="local", type="fs", path=str(tmp_path / "repo"))},
        primary_repository="local",
        state_dir=str(tmp_path / "state"),
        host_id=host,
    )
    return Workspace(stack=stack, repo=FsRepository(tmp_path / "repo"), codec=Codec())


def leftover(ws: Workspace, backup_id: str, lease: Lease | bytes | None) -> None:
    ws.repo.put(f"s/pg/backups/{backup_id}/base.00000.tar.zst", b"part")
    if lease is not None:
        raw = lease if isinstance(lease, bytes) else lease.to_json()
        ws.repo.put(lease_key("s", "pg", backup_id), raw)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=30)
    return proc.pid


def test_clean_incomplete_spares_live_leases_and_removes_the_rest(tmp_path: Path) -> None:
    ws = workspace(tmp_path, host="host-b")
    now = datetime.now(UTC)
    hour = timedelta(hours=1)

    def lease(host: str, pid: int, expires: datetime) -> Lease:
        return Lease(host, pid, "run", "x", now - hour, expires)

    leftover(ws, "1-no-lease", None)
    leftover(ws, "2-other-host-live", lease("host-a", 4242, now + hour))
    leftover(ws, "3-other-host-expired", lease("host-a", 4242, now - timedelta(seconds=1)))
    leftover(ws, "4-this-host-dead-pid", lease("host-b", dead_pid(), now + hour))
    leftover(ws, "5-this-host-live-pid", lease("host-b", os.getpid(), now + hour))
    leftover(ws, "6-unreadable-lease", b"{not json")
    leftover(ws, "7-other-host-dead-pid", lease("host-a", dead_pid(), now + hour))  # not ours to judge
    removed = clean_incomplete(ws, "pg")
    assert removed == ("1-no-lease", "3-other-host-expired", "4-this-host-dead-pid")
    kept = {key.split("/")[3] for key in ws.repo.list("s/pg/backups/")}
    assert kept == {
        "2-other-host-live",
        "5-this-host-live-pid",
        "6-unreadable-lease",
        "7-other-host-dead-pid",
    }


def test_a_backup_claims_its_id_with_a_lease_and_releases_it(tmp_path: Path) -> None:
    ws = workspace(tmp_path, host="host-a")
    t = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
    other = workspace(tmp_path, host="host-b")
    with backup_lock(ws, "pg") as keeper:
        first = unique_id(ws, "pg", BackupKind.BASE, t)
        assert first == "20261130T040000Z-base"
        lease = Lease.from_json(ws.repo.get(lease_key("s", "pg", first)))
        assert (lease.host, lease.pid, lease.run_id) == ("host-a", os.getpid(), keeper.run_id)
        assert lease.expires_at > datetime.now(UTC)
        # another host starting in the same second takes the next id, and cannot clean ours
        other_keeper = LeaseKeeper(other.repo, SystemClock(), host="host-b")
        other.leases["pg"] = other_keeper
        assert unique_id(other, "pg", BackupKind.BASE, t) == "20261130T040000Z-base-2"
        other_keeper.release()
        assert clean_incomplete(other, "pg") == ()
    assert not ws.repo.exists(lease_key("s", "pg", first))


def test_ids_of_one_second_keep_sorting_by_time_after_the_first_is_pruned(tmp_path: Path) -> None:
    """An id freed by prune is not made again below a later id of the same second (the
    object sweep compares run ids to tell an interrupted run's copies from a pruned one's)."""
    ws = workspace(tmp_path)
    t = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
    made = []
    for _ in range(3):
        with backup_lock(ws, "pg"):
            made.append(unique_id(ws, "pg", BackupKind.OBJECTS, t))
            ws.repo.put(f"s/pg/backups/{made[-1]}/manifest.json", b"{}")
    assert made == ["20261130T040000Z-objects", "20261130T040000Z-objects-2", "20261130T040000Z-objects-3"]
    ws.repo.delete(f"s/pg/backups/{made[0]}/manifest.json")  # pruned
    with backup_lock(ws, "pg"):
        again = unique_id(ws, "pg", BackupKind.OBJECTS, t)
    assert again == "20261130T040000Z-objects-4"
    assert sorted([*made, again, "20261130T040000Z-objects-10"], key=backup_id_order) == [
        *made,
        again,
        "20261130T040000Z-objects-10",
    ]


def test_an_id_is_only_made_under_the_backup_lock(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match="only made under backup_lock"):
        unique_id(workspace(tmp_path), "pg", BackupKind.BASE, datetime.now(UTC))


def test_the_lease_is_renewed_while_the_backup_runs(tmp_path: Path) -> None:
    repo = FsRepository(tmp_path / "repo")
    keeper = LeaseKeeper(repo, SystemClock(), host="h", renew_every=0.05, ttl=0.5)
    key = lease_key("s", "pg", "b1")
    assert keeper.claim(key, "b1")
    first = Lease.from_json(repo.get(key)).expires_at
    keeper.keep()
    try:
        wait_for(
            lambda: Lease.from_json(repo.get(key)).expires_at > first + timedelta(seconds=0.2),
            timeout=10,
            what="the lease's expiry to move forward",
        )
    finally:
        keeper.release()
    assert not repo.exists(key)


def test_a_lease_taken_away_is_not_committed_over(tmp_path: Path) -> None:
    repo = FsRepository(tmp_path / "repo")
    keeper = LeaseKeeper(repo, SystemClock(), host="h")
    key = lease_key("s", "pg", "b1")
    assert keeper.claim(key, "b1")
    repo.delete(key)  # another host judged it expired and cleaned the backup
    with pytest.raises(OperationError, match="removed or taken over"):
        keeper.confirm()
    keeper.release()


def test_host_id_comes_from_the_environment_then_the_stack_then_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRKIT_HOST_ID", "from-env")
    assert host_id("from-stack") == "from-env"
    monkeypatch.delenv("DRKIT_HOST_ID")
    assert host_id("from-stack") == "from-stack"
    assert host_id(None).startswith(socket.gethostname())


class TakenOverMidRenewal(FsRepository):
    """Another host takes the lease over (its cleaner removed the expired one, its backup
    claimed the id) just as this host's renewal writes."""

    def __init__(self, root: Path, key: str, theirs: Lease) -> None:
        super().__init__(root)
        self.key, self.theirs, self.armed = key, theirs, False

    def _take_over(self, key: str) -> None:
        if self.armed and key == self.key:
            self.armed = False
            FsRepository.delete(self, key)
            FsRepository.put(self, key, self.theirs.to_json(), overwrite=False)

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        self._take_over(key)
        super().put(key, data, overwrite=overwrite)

    def replace_if(self, key: str, data: bytes, *, expected: bytes) -> bool:
        self._take_over(key)
        return super().replace_if(key, data, expected=expected)


def test_a_renewal_never_overwrites_or_recreates_a_lease_another_host_took(tmp_path: Path) -> None:
    key = lease_key("s", "pg", "b1")
    now = datetime.now(UTC)
    theirs = Lease("host-b", 4242, "their-run", "b1", now, now + timedelta(minutes=5))
    repo = TakenOverMidRenewal(tmp_path / "repo", key, theirs)
    keeper = LeaseKeeper(repo, SystemClock(), host="host-a")
    assert keeper.claim(key, "b1")
    repo.armed = True
    keeper.renew()
    assert Lease.from_json(repo.get(key)).run_id == "their-run"  # theirs stands
    assert keeper.lost is not None
    with pytest.raises(OperationError, match="removed or taken over"):
        keeper.confirm()
    keeper.release()
    assert Lease.from_json(repo.get(key)).run_id == "their-run"  # and release leaves it


def test_a_backup_whose_files_were_removed_is_never_committed(tmp_path: Path) -> None:
    from drkit.domain.backup import Manifest, StoredFile
    from drkit.engines.core.commit import commit_manifest

    ws = workspace(tmp_path)
    t = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
    with backup_lock(ws, "pg"):
        backup_id = unique_id(ws, "pg", BackupKind.BASE, t)
        ws.repo.put(f"s/pg/backups/{backup_id}/base.00000.tar.zst", b"part zero")
        files = (
            StoredFile("base.00000.tar.zst", 9, "a" * 64),
            StoredFile("base.00001.tar.zst", 9, "b" * 64),  # removed by another host's cleanup
        )
        m = Manifest(backup_id, "s", "pg", BackupKind.BASE, t, t, files, {})
        with pytest.raises(OperationError, match=r"base.00001.tar.zst of .* is missing .* not committing"):
            commit_manifest(ws, m)
    assert not ws.repo.exists(f"s/pg/backups/{backup_id}/manifest.json")
