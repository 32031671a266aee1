"""The WAL archive knows whose WAL it holds (engines/postgres/wal/identity.py): the first
push records the cluster's system identifier, another cluster's WAL is refused, and
wal-fetch from an archive that is missing, empty (an unmounted mount point) or another
cluster's exits 126, so PostgreSQL stops recovery instead of ending it early."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.errors import IntegrityError
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.postgres.wal.identity import read_data_dir, read_wal_header
from tests.conftest import CliResult, run_drkit

SEG = "000000010000000000000003"
NEXT = "000000010000000000000004"
SIZE = 16 * 1024 * 1024
OURS, THEIRS = 7300000000000000001, 7300000000000000002
MAGIC_15, MAGIC_16 = 0xD110, 0xD113
IDENTITY = "demo/postgres/wal/identity.json"


def wal(name: str, sysid: int = OURS, magic: int = MAGIC_15, body: bytes = b"records") -> bytes:
    """The start of a WAL segment: PostgreSQL's long page header, then some bytes."""
    tli, number = int(name[:8], 16), int(name[8:16], 16) * 256 + int(name[16:], 16)
    header = struct.pack("=HHIQI4xQII", magic, 0x0002, tli, number * SIZE, 0, sysid, SIZE, 8192)
    return header + body + bytes(8192)


def data_dir(path: Path, sysid: int, major: int = 15) -> Path:
    """What wal-fetch finds in its working directory when PostgreSQL runs it."""
    (path / "global").mkdir(parents=True)
    (path / "global" / "pg_control").write_bytes(struct.pack("=Q", sysid) + bytes(8184))
    (path / "PG_VERSION").write_text(f"{major}\n")
    return path


def config(tmp_path: Path, repo: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(
        f"stack: demo\nrepositories:\n  local: {{type: fs, path: {repo}}}\n"
        "services:\n  postgres: {kind: postgres}\n"
    )
    return path


def fetch(cfg: Path, name: str, dest: Path, cwd: Path | None = None) -> CliResult:
    here = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return run_drkit("wal-fetch", name, str(dest), config=cfg)
    finally:
        os.chdir(here)


def test_the_header_and_the_control_file_name_the_cluster(tmp_path: Path) -> None:
    header = read_wal_header(wal(SEG))
    assert header is not None and (header.system_identifier, header.page_magic) == (str(OURS), MAGIC_15)
    assert read_wal_header(b"1\t0/3000000\tno recovery target specified\n") is None
    assert read_wal_header(b"w" * 64 + bytes(4096)) is None
    local = read_data_dir(data_dir(tmp_path / "pgdata", OURS))
    assert local is not None and (local.system_identifier, local.major) == (str(OURS), 15)
    assert read_data_dir(tmp_path) is None


def test_the_first_push_records_the_identity_and_another_clusters_wal_is_refused(tmp_path: Path) -> None:
    repo = FsRepository(tmp_path / "repo")
    archive = WalArchive(repo, "demo", "postgres", Codec())
    archive.push_bytes(SEG, wal(SEG))
    recorded = json.loads(repo.get(IDENTITY))
    assert recorded["system_identifier"] == str(OURS) and recorded["page_magic"] == MAGIC_15
    with pytest.raises(IntegrityError, match=f"it is from system {THEIRS}"):
        WalArchive(repo, "demo", "postgres", Codec()).push_bytes(NEXT, wal(NEXT, THEIRS))
    with pytest.raises(IntegrityError, match="another major"):  # the same system after pg_upgrade
        WalArchive(repo, "demo", "postgres", Codec()).push_bytes(NEXT, wal(NEXT, magic=MAGIC_16))
    assert archive.find(NEXT) is None
    archive.push_bytes("00000002.history", b"1\t0/3000000\tno recovery target specified\n")  # no header


def test_wal_fetch_from_a_missing_repository_is_126(tmp_path: Path) -> None:
    cfg = config(tmp_path, str(tmp_path / "not-mounted" / "drkit"))
    result = fetch(cfg, SEG, tmp_path / "RECOVERYXLOG")
    assert result.code == 126, result.stderr
    assert "missing or empty" in result.stderr and len(result.stderr.splitlines()) == 1


def test_wal_fetch_from_an_empty_mount_point_is_126(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()  # the mount point, with nothing mounted on it
    result = fetch(config(tmp_path, str(tmp_path / "mnt")), SEG, tmp_path / "RECOVERYXLOG")
    assert result.code == 126, result.stderr
    assert "is the repository mounted" in result.stderr


def test_wal_fetch_from_another_clusters_archive_is_126(tmp_path: Path) -> None:
    cfg = config(tmp_path, str(tmp_path / "repo"))
    WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec()).push_bytes(SEG, wal(SEG, THEIRS))
    ours = data_dir(tmp_path / "pgdata", OURS)
    for name in (SEG, NEXT):  # present or not: the archive is not this server's
        result = fetch(cfg, name, tmp_path / "RECOVERYXLOG", cwd=ours)
        assert result.code == 126, result.stderr
        assert "another cluster's archive" in result.stderr
    assert not (tmp_path / "RECOVERYXLOG").exists()
    theirs = data_dir(tmp_path / "theirs", THEIRS)
    assert fetch(cfg, SEG, tmp_path / "RECOVERYXLOG", cwd=theirs).code == 0


def test_a_foreign_segment_in_an_archive_without_identity_is_refused(tmp_path: Path) -> None:
    """An archive older than the identity file: each segment's header is still checked
    against the server that asks for it."""
    repo = FsRepository(tmp_path / "repo")
    WalArchive(repo, "demo", "postgres", Codec()).push_bytes(SEG, wal(SEG, THEIRS))
    repo.delete(IDENTITY)
    cfg = config(tmp_path, str(tmp_path / "repo"))
    result = fetch(cfg, SEG, tmp_path / "RECOVERYXLOG", cwd=data_dir(tmp_path / "pgdata", OURS))
    assert result.code == 126 and f"it is from system {THEIRS}" in result.stderr, result.stderr
    assert fetch(cfg, NEXT, tmp_path / "RECOVERYXLOG").code == 1  # an old archive: absent is absent


def test_the_identity_is_written_by_the_next_push_into_an_older_archive(tmp_path: Path) -> None:
    repo = FsRepository(tmp_path / "repo")
    WalArchive(repo, "demo", "postgres", Codec()).push_bytes(SEG, wal(SEG))
    repo.delete(IDENTITY)
    WalArchive(repo, "demo", "postgres", Codec()).push_bytes(NEXT, wal(NEXT))
    assert json.loads(repo.get(IDENTITY))["system_identifier"] == str(OURS)


def test_an_absent_answer_needs_the_archive_to_still_be_there(tmp_path: Path) -> None:
    """A repository unmounted during a recovery: the next segment is not "absent"."""
    repo = FsRepository(tmp_path / "repo")
    archive = WalArchive(repo, "demo", "postgres", Codec())
    archive.push_bytes(SEG, wal(SEG))
    assert archive.read(SEG) is not None
    repo.delete_tree("demo/")
    with pytest.raises(Exception, match="lost its identity|missing or empty"):
        archive.read(NEXT)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a file owned by another user")
def test_a_home_relative_repository_path_means_one_directory_for_every_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`path: ~/backups` is the home of stack.yaml's owner, whoever reads the file (root runs
    backups, the database user runs wal-push with the same file)."""
    import pwd

    from drkit.config.loader import load_stack

    owner = pwd.getpwnam("postgres")
    cfg = config(tmp_path, "~/drkit-backups")
    os.chown(cfg, owner.pw_uid, owner.pw_gid)
    for home in ("/root", "/var/lib/somebody-else"):
        monkeypatch.setenv("HOME", home)
        spec = load_stack(cfg).repository
        assert spec.path == f"{owner.pw_dir}/drkit-backups"


def test_a_restore_plan_refuses_a_backup_of_another_cluster_than_the_archive(tmp_path: Path) -> None:
    archive = WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec())
    archive.push_bytes(SEG, wal(SEG))
    archive.guard.require_system(str(OURS), "backup B")
    with pytest.raises(IntegrityError, match=f"backup B is of system {THEIRS}"):
        archive.guard.require_system(str(THEIRS), "backup B")
