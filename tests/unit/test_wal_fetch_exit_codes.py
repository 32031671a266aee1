"""wal-fetch says "absent" (exit 1) only when the archive has no such file; every other
outcome exits 126, so PostgreSQL stops recovery instead of ending it early and promoting
without the tail. The same for the prefetch wrapper (a shell one-liner) in front of it."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.cli import entry, wal_light
from drkit.domain.errors import DecryptionError, IntegrityError, RepositoryError
from drkit.domain.wal import Segment
from drkit.engines.postgres.wal import archive as archive_module
from drkit.engines.postgres.wal.archive import WalArchive
from drkit.engines.postgres.wal.prefetch import PREFETCH_DIR, prefetch_restore_command, prefetching
from tests.conftest import run_drkit

SEG = "000000010000000000000003"
PREFIX = "demo/postgres/wal/00000001/"
CONFIG = (
    "stack: demo\nrepositories:\n  local: {type: fs, path: ./repo}\nservices:\n  postgres: {kind: postgres}\n"
)


class FailingRepository(FsRepository):
    """A filesystem repository whose stat, or whose read of a segment, fails."""

    def __init__(
        self, root: Path, *, size_error: BaseException | None = None, get_error: BaseException | None = None
    ):
        super().__init__(root)
        self.size_error = size_error
        self.get_error = get_error

    def size(self, key: str) -> int:
        if self.size_error is not None:
            raise self.size_error
        return super().size(key)

    def get(self, key: str) -> bytes:
        if self.get_error is not None and not key.endswith(".sha256"):
            raise self.get_error
        return super().get(key)


def segment_bytes(tag: bytes = b"w") -> bytes:
    return tag * 64 + bytes(64 * 1024)


def status(fetch: object, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = wal_light.fetch_status(fetch)  # type: ignore[arg-type]
    return code, capsys.readouterr().err.splitlines()


# -- the mapping -----------------------------------------------------------------------------


def test_found_is_0_and_absent_is_1_and_silent(capsys: pytest.CaptureFixture[str]) -> None:
    assert status(lambda: True, capsys) == (0, [])
    assert status(lambda: False, capsys) == (1, [])


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device", "pg_wal/RECOVERYXLOG"),
        PermissionError(errno.EACCES, "Permission denied", "/repo/wal"),
        OSError(errno.EIO, "Input/output error"),
        FileNotFoundError(errno.ENOENT, "No such file or directory", "/repo/wal/x.zst"),
        RuntimeError("a bug\nwith a second line"),
        IntegrityError("archived X does not match its recorded SHA-256; it is damaged"),
        DecryptionError("no age identity"),
        RepositoryError("s3: 503 Slow Down"),
    ],
    ids=["ENOSPC", "EACCES", "EIO", "ENOENT-on-read", "unexpected", "corrupt", "decrypt", "repository"],
)
def test_every_failure_is_126_with_one_line(error: BaseException, capsys: pytest.CaptureFixture[str]) -> None:
    def fetch() -> bool:
        raise error

    code, lines = status(fetch, capsys)
    assert code == wal_light.FETCH_ERROR == 126
    assert len(lines) == 1 and lines[0].startswith("error: "), lines


# -- the direct path, on a real archive ----------------------------------------------------------


def run_fetch(
    repo: FsRepository, dest: Path, capsys: pytest.CaptureFixture[str], codec: Codec | None = None
) -> int:
    archive = WalArchive(repo, "demo", "postgres", codec or Codec())
    code, lines = status(lambda: archive.fetch(SEG, dest), capsys)
    assert len(lines) == (0 if code in (0, 1) else 1), lines
    return code


def test_a_real_enospc_writing_the_segment_is_126(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = FsRepository(tmp_path / "repo")
    WalArchive(repo, "demo", "postgres", Codec()).push_bytes(SEG, segment_bytes())
    dest = tmp_path / "RECOVERYXLOG"
    made: list[Path] = []

    def temporary_on_a_full_disk(path: Path) -> tuple[int, Path]:
        # wal-fetch writes a temporary beside DEST first: here it lies on /dev/full (ENOSPC).
        tmp = path.with_name(f".{path.name}.full.tmp")
        tmp.symlink_to("/dev/full")
        made.append(tmp)
        return os.open(tmp, os.O_WRONLY), tmp

    monkeypatch.setattr(archive_module, "temp_beside", temporary_on_a_full_disk)
    assert run_fetch(repo, dest, capsys) == 126
    assert not dest.exists()
    assert made and not made[0].is_symlink(), "the failed temporary is removed"


def test_a_destination_directory_that_is_gone_is_126(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = FsRepository(tmp_path / "repo")
    WalArchive(repo, "demo", "postgres", Codec()).push_bytes(SEG, segment_bytes())
    assert run_fetch(repo, tmp_path / "gone" / "RECOVERYXLOG", capsys) == 126


@pytest.mark.parametrize(
    ("size_error", "get_error"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), None),  # the stat itself fails
        (None, OSError(errno.EIO, "Input/output error")),
        (None, PermissionError(errno.EACCES, "Permission denied")),
        (None, FileNotFoundError(errno.ENOENT, "pruned meanwhile")),  # listed, then unreadable
        (None, RuntimeError("unexpected")),
    ],
    ids=["stat-EACCES", "read-EIO", "read-EACCES", "read-ENOENT", "read-unexpected"],
)
def test_a_repository_that_fails_is_never_absent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    size_error: BaseException | None,
    get_error: BaseException | None,
) -> None:
    WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec()).push_bytes(SEG, segment_bytes())
    repo = FailingRepository(tmp_path / "repo", size_error=size_error, get_error=get_error)
    assert run_fetch(repo, tmp_path / "RECOVERYXLOG", capsys) == 126


def test_a_corrupt_segment_is_126(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = FsRepository(tmp_path / "repo")
    WalArchive(repo, "demo", "postgres", Codec()).push_bytes(SEG, segment_bytes())
    repo.put(PREFIX + SEG + ".zst", b"not zstd at all")
    assert run_fetch(repo, tmp_path / "RECOVERYXLOG", capsys) == 126


def test_a_segment_that_does_not_match_its_hash_is_126(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = FsRepository(tmp_path / "repo")
    WalArchive(repo, "demo", "postgres", Codec()).push_bytes(SEG, segment_bytes())
    repo.put(PREFIX + SEG + ".zst", Codec().encode(segment_bytes(b"x")))
    assert run_fetch(repo, tmp_path / "RECOVERYXLOG", capsys) == 126


def test_a_segment_that_cannot_be_decrypted_is_126(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    repo = FsRepository(tmp_path / "repo")
    WalArchive(repo, "demo", "postgres", Codec(recipients=(recipient,))).push_bytes(SEG, segment_bytes())
    wrong = pyrage.x25519.Identity.generate()
    assert run_fetch(repo, tmp_path / "RECOVERYXLOG", capsys, Codec(identity=str(wrong))) == 126


def test_absent_is_decided_by_the_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = FsRepository(tmp_path / "repo")
    # An archive with nothing at all is a missing or unmounted one, not the end of the WAL.
    assert run_fetch(repo, tmp_path / "RECOVERYXLOG", capsys) == 126
    WalArchive(repo, "demo", "postgres", Codec()).push_bytes("000000010000000000000002", segment_bytes())
    assert run_fetch(repo, tmp_path / "RECOVERYXLOG", capsys) == 1
    assert not (tmp_path / "RECOVERYXLOG").exists()


# -- the executable ----------------------------------------------------------------------------


def test_the_command_exits_126_on_an_os_error_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(CONFIG)
    WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec()).push_bytes(SEG, segment_bytes())
    result = run_drkit(
        "wal-fetch", SEG, str(tmp_path / "gone" / "RECOVERYXLOG"), config=tmp_path / "stack.yaml"
    )
    assert result.code == 126, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "gone" in result.stderr, result.stderr


def test_a_broken_restore_command_line_is_126_not_absent(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(CONFIG)
    result = run_drkit("wal-fetch", SEG, config=tmp_path / "stack.yaml")  # no destination
    assert result.code == 126, result.stderr


def test_a_failing_import_is_126(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "drkit.cli.wal_light", None)  # the import raises ImportError
    assert entry._fetch(["wal-fetch", SEG, "/tmp/x"]) == 126
    assert len(capsys.readouterr().err.splitlines()) == 1


# -- the prefetch path --------------------------------------------------------------------------


def run_restore_command(data_dir: Path, fallback: str, name: str, dest: Path) -> int:
    """Run the restore_command as PostgreSQL does: %f and %p substituted, through /bin/sh."""
    command = prefetch_restore_command(data_dir, fallback).replace("%f", name).replace("%p", str(dest))
    return subprocess.run(["/bin/sh", "-c", command], timeout=120, check=False).returncode


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    directory = tmp_path / "data" / PREFETCH_DIR
    directory.mkdir(parents=True)
    return directory


def test_prefetched_segment_is_copied(tmp_path: Path, spool: Path) -> None:
    (spool / SEG).write_bytes(b"segment")
    dest = tmp_path / "RECOVERYXLOG"
    assert run_restore_command(spool.parent, "exit 99", SEG, dest) == 0
    assert dest.read_bytes() == b"segment"
    assert (spool / ".requested").read_text().strip() == SEG


def test_prefetch_copy_into_a_full_disk_is_not_absent(tmp_path: Path, spool: Path) -> None:
    (spool / SEG).write_bytes(b"segment")
    dest = tmp_path / "RECOVERYXLOG"
    dest.symlink_to("/dev/full")  # cp writes through it: ENOSPC
    # The failed copy falls back to wal-fetch, whose status PostgreSQL then gets.
    assert run_restore_command(spool.parent, "exit 126", SEG, dest) == 126


def test_prefetch_copy_into_a_full_disk_then_real_wal_fetch_is_126(tmp_path: Path, spool: Path) -> None:
    (tmp_path / "stack.yaml").write_text(CONFIG)
    WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec()).push_bytes(SEG, segment_bytes())
    (spool / SEG).write_bytes(segment_bytes())
    dest = tmp_path / "RECOVERYXLOG"
    dest.symlink_to("/dev/full")
    # wal-fetch's own write fails too: files it writes may not grow past 512 bytes (EFBIG).
    config = tmp_path / "stack.yaml"
    fallback = f'ulimit -f 1; "{sys.executable}" -m drkit --config "{config}" wal-fetch "%f" "%p"'
    assert run_restore_command(spool.parent, fallback, SEG, dest) == 126


def test_prefetch_absent_marker_is_the_only_exit_1(tmp_path: Path, spool: Path) -> None:
    (spool / f".absent-{SEG}").touch()
    assert run_restore_command(spool.parent, "exit 126", SEG, tmp_path / "RECOVERYXLOG") == 1
    other = "000000010000000000000009"
    assert run_restore_command(spool.parent, "exit 126", other, tmp_path / "RECOVERYXLOG") == 126


def test_prefetch_history_markers_come_from_a_stat_that_can_fail(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    repo = FailingRepository(tmp_path / "repo", size_error=PermissionError(errno.EACCES, "Permission denied"))
    archive = WalArchive(repo, "demo", "postgres", Codec())
    first = Segment.parse(SEG, 16 * 1024 * 1024)
    with pytest.raises(PermissionError), prefetching(archive, data_dir, first, first, os_user=None):
        pass
    assert not list((data_dir / PREFETCH_DIR).glob(".absent-*")), "no history file called absent"


def test_a_timeline_history_file_is_absent_only_when_the_archive_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = FsRepository(tmp_path / "repo")
    archive = WalArchive(repo, "demo", "postgres", Codec())
    dest = tmp_path / "RECOVERYHISTORY"
    archive.push_bytes(SEG, segment_bytes())
    assert status(lambda: archive.fetch("00000002.history", dest), capsys) == (1, [])
    archive.push_bytes("00000002.history", b"1\t0/3000000\tno recovery target specified\n")
    assert status(lambda: archive.fetch("00000002.history", dest), capsys) == (0, [])
    assert dest.read_bytes().startswith(b"1\t0/3000000")
    failing = WalArchive(
        FailingRepository(tmp_path / "repo", size_error=OSError(errno.EIO, "Input/output error")),
        "demo",
        "postgres",
        Codec(),
    )
    code, lines = status(lambda: failing.fetch("00000003.history", dest), capsys)
    assert code == 126 and len(lines) == 1
