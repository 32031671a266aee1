"""The WAL archive on a real filesystem repository: append-only, idempotent, encrypted or not."""

from __future__ import annotations

from pathlib import Path

import pyrage
import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.errors import DecryptionError, IntegrityError, OperationError
from drkit.engines.postgres.wal.archive import WalArchive

SEG = "000000010000000000000003"
NEXT = "000000010000000000000004"
PREFIX = "demo/postgres/wal/00000001/"


def wal_bytes(tag: bytes) -> bytes:
    # Real segments are 16 MiB of mostly zeros; the content only has to differ.
    return tag * 64 + bytes(64 * 1024)


@pytest.fixture
def repo(tmp_path: Path) -> FsRepository:
    return FsRepository(tmp_path / "repo")


def archive_with(repo: FsRepository, codec: Codec) -> WalArchive:
    return WalArchive(repo, "demo", "postgres", codec)


def test_push_stores_under_the_documented_key(repo: FsRepository) -> None:
    result = archive_with(repo, Codec()).push_bytes(SEG, wal_bytes(b"a"))
    assert result.stored
    assert result.key == PREFIX + SEG + ".zst"
    # the segment, and beside it the SHA-256 of its raw content
    assert repo.list("demo/postgres/wal/") == [PREFIX + SEG + ".sha256", PREFIX + SEG + ".zst"]


def test_pushing_the_same_segment_twice_succeeds_without_storing_again(
    repo: FsRepository,
) -> None:
    archive = archive_with(repo, Codec())
    assert archive.push_bytes(SEG, wal_bytes(b"a")).stored
    before = repo.get(PREFIX + SEG + ".zst")
    again = archive.push_bytes(SEG, wal_bytes(b"a"))
    assert again.stored is False
    assert again.key == PREFIX + SEG + ".zst"
    assert repo.get(PREFIX + SEG + ".zst") == before


def test_different_content_under_an_existing_name_is_refused(repo: FsRepository) -> None:
    archive = archive_with(repo, Codec())
    archive.push_bytes(SEG, wal_bytes(b"a"))
    with pytest.raises(IntegrityError, match=f"{SEG} is already archived with different content"):
        archive.push_bytes(SEG, wal_bytes(b"b"))
    out = repo.root / "out"
    assert archive.fetch(SEG, out)
    assert out.read_bytes() == wal_bytes(b"a")  # the original is untouched


def test_push_from_a_path_and_a_missing_path(repo: FsRepository, tmp_path: Path) -> None:
    archive = archive_with(repo, Codec())
    path = tmp_path / SEG
    path.write_bytes(wal_bytes(b"p"))
    assert archive.push(path).name == SEG
    with pytest.raises(OperationError, match="no such WAL file"):
        archive.push(tmp_path / NEXT)


def test_push_refuses_a_name_that_is_not_wal(repo: FsRepository) -> None:
    with pytest.raises(OperationError, match="is not a WAL file name"):
        archive_with(repo, Codec()).push_bytes("postgresql.conf", b"x")


def test_fetch_writes_the_segment_and_reports_absence(repo: FsRepository, tmp_path: Path) -> None:
    archive = archive_with(repo, Codec())
    archive.push_bytes(SEG, wal_bytes(b"a"))
    dest = tmp_path / "RECOVERYXLOG"
    assert archive.fetch(SEG, dest)
    assert dest.read_bytes() == wal_bytes(b"a")
    missing = tmp_path / "missing"
    assert archive.fetch(NEXT, missing) is False
    assert not missing.exists()
    assert not list(tmp_path.glob("*.drkit-tmp"))


def test_fetch_serves_a_partial_for_a_missing_segment(repo: FsRepository, tmp_path: Path) -> None:
    archive = archive_with(repo, Codec())
    archive.push_bytes(SEG, wal_bytes(b"a"))
    archive.push_bytes(NEXT + ".partial", wal_bytes(b"partial-1"))
    archive.push_bytes(NEXT + ".partial", wal_bytes(b"partial-2"))  # a partial may grow
    dest = tmp_path / "RECOVERYXLOG"
    assert archive.fetch(NEXT, dest)
    assert dest.read_bytes() == wal_bytes(b"partial-2")
    assert archive.names() == {SEG, NEXT + ".partial"}


def test_the_complete_segment_replaces_its_partial(repo: FsRepository, tmp_path: Path) -> None:
    archive = archive_with(repo, Codec())
    archive.push_bytes(NEXT + ".partial", wal_bytes(b"half"))
    archive.push_bytes(NEXT, wal_bytes(b"full"))
    assert archive.names() == {NEXT}
    dest = tmp_path / "x"
    assert archive.fetch(NEXT, dest)
    assert dest.read_bytes() == wal_bytes(b"full")


def test_history_files_and_timelines(repo: FsRepository) -> None:
    archive = archive_with(repo, Codec())
    archive.push_bytes("00000002.history", b"1\t0/3000158\tno recovery target specified\n")
    archive.push_bytes(
        "00000003.history",
        b"1\t0/3000158\tno recovery target specified\n2\t0/5000000\tpromoted\n",
    )
    archive.push_bytes("00000005.history", b"4\t0/9000000\tunrelated\n")
    assert archive.history(2) == "1\t0/3000158\tno recovery target specified\n"
    assert archive.history(9) is None
    assert archive.timelines_from(1) == [1, 2, 3]
    assert repo.exists("demo/postgres/wal/00000002/00000002.history.zst")


# --- encryption ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


def test_encrypted_round_trip(repo: FsRepository, tmp_path: Path, identity: pyrage.x25519.Identity) -> None:
    codec = Codec(recipients=(str(identity.to_public()),), identity=str(identity))
    archive = archive_with(repo, codec)
    raw = wal_bytes(b"secret rows")
    result = archive.push_bytes(SEG, raw)
    assert result.key == PREFIX + SEG + ".zst.age"
    stored = repo.get(result.key)
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert b"secret rows" not in stored
    dest = tmp_path / "RECOVERYXLOG"
    assert archive.fetch(SEG, dest)
    assert dest.read_bytes() == raw
    assert archive.push_bytes(SEG, raw).stored is False  # with the identity it can compare


def test_decrypt_without_identity_is_a_clear_error(
    repo: FsRepository, tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    recipient = str(identity.to_public())
    archive_with(repo, Codec(recipients=(recipient,))).push_bytes(SEG, wal_bytes(b"a"))
    reader = archive_with(repo, Codec(recipients=(recipient,), identity=None))
    with pytest.raises(DecryptionError) as exc:
        reader.fetch(SEG, tmp_path / "out")
    assert SEG in exc.value.message
    assert "is encrypted and no age identity is configured" in exc.value.message
    assert exc.value.hint is not None
    assert "encryption.identity" in exc.value.hint
    assert not (tmp_path / "out").exists()


def test_decrypt_with_the_wrong_identity_is_a_clear_error(
    repo: FsRepository, tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    recipient = str(identity.to_public())
    archive_with(repo, Codec(recipients=(recipient,))).push_bytes(SEG, wal_bytes(b"a"))
    other = pyrage.x25519.Identity.generate()
    reader = archive_with(repo, Codec(identity=f"# another key\n{other}\n"))
    with pytest.raises(DecryptionError, match=f"cannot decrypt .*{SEG}.*wrong age identity"):
        reader.fetch(SEG, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_unencrypted_reader_still_finds_encrypted_segments(
    repo: FsRepository, tmp_path: Path, identity: pyrage.x25519.Identity
) -> None:
    """Encryption may be switched on later: old .zst and new .zst.age both restore."""
    archive_with(repo, Codec()).push_bytes(SEG, wal_bytes(b"old"))
    recipient = str(identity.to_public())
    both = archive_with(repo, Codec(recipients=(recipient,), identity=str(identity)))
    both.push_bytes(NEXT, wal_bytes(b"new"))
    assert both.names() == {SEG, NEXT}
    for name, tag in ((SEG, b"old"), (NEXT, b"new")):
        dest = tmp_path / name
        assert both.fetch(name, dest)
        assert dest.read_bytes() == wal_bytes(tag)


def test_repush_to_an_encrypted_archive_without_the_identity_succeeds(
    repo: FsRepository, identity: pyrage.x25519.Identity
) -> None:
    recipient = str(identity.to_public())
    archiver = archive_with(repo, Codec(recipients=(recipient,)))  # no identity: the usual setup
    assert archiver.push_bytes(SEG, wal_bytes(b"a")).stored
    # PostgreSQL crashed before it recorded the success; it runs archive_command again.
    assert archiver.push_bytes(SEG, wal_bytes(b"a")).stored is False


def test_a_damaged_segment_is_refused_not_served(repo: FsRepository, tmp_path: Path) -> None:
    archive = archive_with(repo, Codec())
    key = archive.push_bytes(SEG, wal_bytes(b"a")).key
    stored = bytearray(repo.get(key))
    stored[len(stored) // 2] ^= 0xFF
    repo.put(key, bytes(stored))
    with pytest.raises(IntegrityError, match=SEG):
        archive.fetch(SEG, tmp_path / "RECOVERYXLOG")
