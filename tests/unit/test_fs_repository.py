"""The filesystem repository keeps the Repository port's promises."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from drkit.adapters.repository.fs import FsRepository
from drkit.domain.errors import IntegrityError, RepositoryError


@pytest.fixture
def repo(tmp_path: Path) -> FsRepository:
    return FsRepository(tmp_path / "repo")


def test_put_get_round_trip_creates_directories(repo: FsRepository) -> None:
    repo.put("demo/postgres/backups/b1/base.00000.tar.zst", b"part zero")
    assert repo.get("demo/postgres/backups/b1/base.00000.tar.zst") == b"part zero"
    assert repo.exists("demo/postgres/backups/b1/base.00000.tar.zst")
    assert repo.size("demo/postgres/backups/b1/base.00000.tar.zst") == len(b"part zero")
    assert (repo.root / "demo/postgres/backups/b1/base.00000.tar.zst").is_file()


def test_get_of_a_missing_key_raises_file_not_found(repo: FsRepository) -> None:
    with pytest.raises(FileNotFoundError):
        repo.get("demo/nothing")
    assert not repo.exists("demo/nothing")


def test_overwrite_true_replaces(repo: FsRepository) -> None:
    repo.put("k/v", b"one")
    repo.put("k/v", b"two")
    assert repo.get("k/v") == b"two"


def test_overwrite_false_refuses_and_keeps_the_original(repo: FsRepository) -> None:
    repo.put("k/manifest.json", b"the commit point")
    with pytest.raises(FileExistsError):
        repo.put("k/manifest.json", b"another", overwrite=False)
    assert repo.get("k/manifest.json") == b"the commit point"
    assert sorted(p.name for p in (repo.root / "k").iterdir()) == ["manifest.json"]


def test_overwrite_false_creates_when_absent(repo: FsRepository) -> None:
    repo.put("k/new", b"x", overwrite=False)
    assert repo.get("k/new") == b"x"


def test_list_is_sorted_recursive_and_limited_to_the_prefix(repo: FsRepository) -> None:
    for key in (
        "s/pg/wal/00000001/b",
        "s/pg/wal/00000001/a",
        "s/pg/wal/00000002/c",
        "s/pg/backups/x/manifest.json",
        "other/z",
    ):
        repo.put(key, key.encode())
    assert repo.list("s/pg/wal/") == [
        "s/pg/wal/00000001/a",
        "s/pg/wal/00000001/b",
        "s/pg/wal/00000002/c",
    ]
    assert repo.list("s/pg/wal") == repo.list("s/pg/wal/")
    assert repo.list("s/") == sorted(k for k in repo.list("") if k.startswith("s/"))
    assert repo.list("nothing/here/") == []


def test_temporary_files_are_never_listed(repo: FsRepository) -> None:
    repo.put("s/pg/wal/00000001/a", b"a")
    # What a put interrupted by a crash leaves behind.
    (repo.root / "s/pg/wal/00000001/.b.x8k2j_.tmp").write_bytes(b"torn")
    assert repo.list("s/") == ["s/pg/wal/00000001/a"]
    assert [e.key for e in repo.entries("s/")] == ["s/pg/wal/00000001/a"]


def test_put_leaves_no_temporary_file(repo: FsRepository) -> None:
    repo.put("d/a", b"1")
    with pytest.raises(FileExistsError):
        repo.put("d/a", b"2", overwrite=False)
    assert [p.name for p in (repo.root / "d").iterdir()] == ["a"]


def test_entries_have_sizes_and_times(repo: FsRepository) -> None:
    repo.put("e/one", b"1")
    repo.put("e/three", b"333")
    entries = repo.entries("e/")
    assert [(e.key, e.size) for e in entries] == [("e/one", 1), ("e/three", 3)]
    for entry in entries:
        assert entry.modified.tzinfo is not None


def test_delete_removes_the_key_and_empty_directories_but_not_the_root(
    repo: FsRepository,
) -> None:
    repo.put("s/pg/backups/b1/manifest.json", b"m")
    repo.put("s/pg/backups/b2/manifest.json", b"m")
    repo.delete("s/pg/backups/b1/manifest.json")
    assert not repo.exists("s/pg/backups/b1/manifest.json")
    assert not (repo.root / "s/pg/backups/b1").exists()
    assert (repo.root / "s/pg/backups/b2").is_dir()
    repo.delete("s/pg/backups/b2/manifest.json")
    assert repo.root.is_dir()
    assert list(repo.root.iterdir()) == []
    repo.delete("s/pg/backups/b2/manifest.json")  # deleting what is gone is fine


@pytest.mark.parametrize("key", ["", "/", "../escape", "a/../../b", "a/./b"])
def test_keys_cannot_escape_the_root(repo: FsRepository, key: str) -> None:
    with pytest.raises(RepositoryError, match="invalid repository key"):
        repo.put(key, b"x")


def test_check_writable_leaves_nothing_behind(repo: FsRepository) -> None:
    repo.check_writable()
    assert repo.list("") == []


def test_unwritable_root_is_a_repository_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    repo = FsRepository(blocker / "repo")
    with pytest.raises(RepositoryError, match="cannot write k/v"):
        repo.put("k/v", b"x")


def _other_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("no unprivileged user to own the repository")


def test_files_take_the_owner_of_the_root_directory(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    repo = FsRepository(root)
    if os.geteuid() == 0:
        user = _other_user()
        os.chown(root, user.pw_uid, user.pw_gid)
        expected = (user.pw_uid, user.pw_gid)
    else:
        expected = (os.getuid(), os.getgid())
    repo.put("s/pg/wal/00000001/000000010000000000000001.zst", b"w")
    repo.put("s/pg/backups/b1/manifest.json", b"m", overwrite=False)
    for relative in (
        "s",
        "s/pg",
        "s/pg/wal",
        "s/pg/wal/00000001",
        "s/pg/wal/00000001/000000010000000000000001.zst",
        "s/pg/backups/b1",
        "s/pg/backups/b1/manifest.json",
    ):
        st = (root / relative).stat()
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == expected, relative
        else:  # not root: nothing to give away; files are simply ours
            assert st.st_uid == expected[0], relative


def test_root_owned_root_keeps_files_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can own files as root")
    repo = FsRepository(tmp_path / "repo")
    repo.put("a/b", b"x")
    assert (tmp_path / "repo/a/b").stat().st_uid == 0


# -- links and other non-blobs: never followed, never listed, reported as strays -----------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the repository that a planted link points at."""
    path = tmp_path / "outside" / "secret"
    path.parent.mkdir()
    path.write_bytes(b"root's secret")
    return path


def test_a_linked_file_is_never_read_listed_or_counted(repo: FsRepository, secret: Path) -> None:
    repo.put("s/redis/backups/b1/manifest.json", b"m")
    os.symlink(secret, repo.root / "s/redis/notes.zst")
    with pytest.raises(IntegrityError, match="notes.zst .* is a symbolic link"):
        repo.get("s/redis/notes.zst")
    with pytest.raises(IntegrityError, match="symbolic link"):
        repo.size("s/redis/notes.zst")
    with pytest.raises(IntegrityError, match="symbolic link"):
        repo.exists("s/redis/notes.zst")
    assert repo.list("s/") == ["s/redis/backups/b1/manifest.json"]
    assert [e.key for e in repo.entries("s/")] == ["s/redis/backups/b1/manifest.json"]
    [stray] = repo.strays("s/")
    assert (stray.key, stray.kind.value) == ("s/redis/notes.zst", "link")
    assert str(secret) in stray.detail


def test_a_linked_directory_is_never_entered_on_read_or_write(repo: FsRepository, tmp_path: Path) -> None:
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (outside / "manifest.json").write_bytes(b"theirs")
    repo.put("s/pg/backups/real/manifest.json", b"m")
    os.symlink(outside, repo.root / "s/pg/backups/evil")
    assert repo.list("s/pg/backups/") == ["s/pg/backups/real/manifest.json"]
    with pytest.raises(IntegrityError, match="symbolic link"):
        repo.get("s/pg/backups/evil/manifest.json")
    with pytest.raises(IntegrityError, match="symbolic link"):
        repo.put("s/pg/backups/evil/base.00000.tar.zst", b"written through a link")
    with pytest.raises(IntegrityError, match="symbolic link"):
        repo.delete("s/pg/backups/evil/manifest.json")
    assert sorted(p.name for p in outside.iterdir()) == ["manifest.json"]
    assert [s.key for s in repo.strays("s/")] == ["s/pg/backups/evil"]
    assert repo.strays("s/pg/backups/evil/")[0].kind.value == "link"


def test_delete_tree_removes_a_link_and_never_what_it_points_to(repo: FsRepository, tmp_path: Path) -> None:
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (outside / "keep.me").write_bytes(b"x")
    repo.put("s/pg/backups/b1/base.00000.tar.zst", b"p")
    os.symlink(outside, repo.root / "s/pg/backups/b1/inner")
    os.symlink(outside / "keep.me", repo.root / "s/pg/backups/b1/file-link")
    os.symlink(outside, repo.root / "s/pg/backups/b2")
    repo.delete_tree("s/pg/backups/b1")
    repo.delete_tree("s/pg/backups/b2")
    assert not (repo.root / "s").exists()
    assert (outside / "keep.me").read_bytes() == b"x"


def test_a_fifo_is_refused_at_once_not_waited_on(repo: FsRepository) -> None:
    repo.put("s/pg/wal/00000001/a", b"a")
    os.mkfifo(repo.root / "s/pg/wal/00000001/000000010000000000000002.zst")
    with pytest.raises(IntegrityError, match="not a regular file"):
        repo.get("s/pg/wal/00000001/000000010000000000000002.zst")
    assert repo.list("s/") == ["s/pg/wal/00000001/a"]
    assert [s.kind.value for s in repo.strays("s/")] == ["special"]


def test_a_put_replaces_a_planted_link_and_never_writes_through_it(repo: FsRepository, secret: Path) -> None:
    repo.put("s/pg/backups/b1/verified.json", b"old")
    target = repo.root / "s/pg/backups/b1/verified.json"
    target.unlink()
    os.symlink(secret, target)
    repo.put("s/pg/backups/b1/verified.json", b"new")
    assert secret.read_bytes() == b"root's secret"
    assert not target.is_symlink() and target.read_bytes() == b"new"
    os.unlink(target)
    os.symlink(secret, target)
    with pytest.raises(FileExistsError):
        repo.put("s/pg/backups/b1/verified.json", b"again", overwrite=False)
    assert secret.read_bytes() == b"root's secret"


def test_temporary_files_are_strays_with_their_age(repo: FsRepository) -> None:
    repo.put("s/pg/wal/00000001/a", b"a")
    tmp = repo.root / "s/pg/wal/00000001/.b.x8k2j_.tmp"
    tmp.write_bytes(b"torn")
    os.utime(tmp, (1_000_000_000, 1_000_000_000))
    [stray] = repo.strays("s/")
    assert (stray.key, stray.kind.value, stray.kind.leftover) == (
        "s/pg/wal/00000001/.b.x8k2j_.tmp",
        "temporary",
        True,
    )
    assert stray.modified is not None and stray.modified.year == 2001
    repo.remove_stray(stray)
    assert not tmp.exists() and repo.list("s/") == ["s/pg/wal/00000001/a"]


def test_replace_if_replaces_only_what_it_expects_and_never_creates(repo: FsRepository) -> None:
    repo.put("s/pg/backups/b1/lease.json", b"ours")
    assert not repo.replace_if("s/pg/backups/b1/lease.json", b"renewed", expected=b"theirs")
    assert repo.get("s/pg/backups/b1/lease.json") == b"ours"
    assert repo.replace_if("s/pg/backups/b1/lease.json", b"renewed, longer", expected=b"ours")
    assert repo.get("s/pg/backups/b1/lease.json") == b"renewed, longer"
    assert repo.replace_if("s/pg/backups/b1/lease.json", b"short", expected=b"renewed, longer")
    assert repo.get("s/pg/backups/b1/lease.json") == b"short"
    repo.delete_tree("s/pg/backups/b1")
    assert not repo.replace_if("s/pg/backups/b1/lease.json", b"again", expected=b"short")
    assert not (repo.root / "s").exists()
