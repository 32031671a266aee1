"""Racing pushes under one WAL name: exactly one wins, and the stored segment always matches
its recorded SHA-256 (on a filesystem repository; tests/integration/test_leases.py does the
same with processes on S3)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.errors import IntegrityError
from drkit.engines.postgres.wal.archive import PushResult, WalArchive

ROUNDS = 60


def segment_name(n: int) -> str:
    return f"00000001000000000000{n:04X}"


def race(
    archives: WalArchive | list[WalArchive], name: str, contents: list[bytes]
) -> list[PushResult | BaseException]:
    """Push each content from its own thread (through its own archive when given a list),
    all released together."""
    each = archives if isinstance(archives, list) else [archives] * len(contents)
    barrier = threading.Barrier(len(contents))
    results: list[PushResult | BaseException] = [RuntimeError("did not run")] * len(contents)

    def push(i: int) -> None:
        barrier.wait()
        try:
            results[i] = each[i].push_bytes(name, contents[i])
        except Exception as exc:  # recorded, asserted on below
            results[i] = exc

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(contents))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def stored_matches_recorded(archive: WalArchive, name: str) -> bool:
    key = archive.find(name)
    assert key is not None, f"{name} is not archived at all"
    raw = archive.codec.decode(archive.repo.get(key), name=key)
    return archive.recorded_hash(name) == sha256(raw)


@pytest.mark.parametrize("contenders", [2, 4])
def test_racing_pushes_of_different_files_under_one_name_have_one_winner(
    tmp_path: Path, contenders: int
) -> None:
    archive = WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec())
    for n in range(ROUNDS):
        name = segment_name(n + 1)
        contents = [bytes([i + 1]) * 4096 + bytes(256 * 1024) for i in range(contenders)]
        results = race(archive, name, contents)
        won = [i for i, r in enumerate(results) if isinstance(r, PushResult)]
        lost = [r for r in results if not isinstance(r, PushResult)]
        assert len(won) == 1, f"round {n}: {len(won)} pushes of different content succeeded: {results}"
        assert all(isinstance(r, IntegrityError) for r in lost), results
        assert stored_matches_recorded(archive, name), f"round {n}: the sidecar does not match the segment"
        out = tmp_path / "fetched"
        assert archive.fetch(name, out)
        assert out.read_bytes() == contents[won[0]]


def test_racing_pushes_of_the_same_file_all_succeed_and_store_it_once(tmp_path: Path) -> None:
    archive = WalArchive(FsRepository(tmp_path / "repo"), "demo", "postgres", Codec())
    for n in range(20):
        name = segment_name(n + 1)
        results = race(archive, name, [b"same" * 1024] * 3)
        assert all(isinstance(r, PushResult) for r in results), results
        assert sum(1 for r in results if isinstance(r, PushResult) and r.stored) == 1
        assert stored_matches_recorded(archive, name)


def test_a_push_killed_after_recording_its_hash_is_retried_and_others_are_refused(tmp_path: Path) -> None:
    repo = FsRepository(tmp_path / "repo")
    archive = WalArchive(repo, "demo", "postgres", Codec())
    name = segment_name(1)
    # what a push killed between the sidecar and the segment leaves behind
    repo.put(f"demo/postgres/wal/00000001/{name}.sha256", sha256(b"first").encode())
    with pytest.raises(IntegrityError, match="another push of .* recorded its hash first") as caught:
        archive.push_bytes(name, b"second")
    assert caught.value.hint and f"delete demo/postgres/wal/00000001/{name}.sha256" in caught.value.hint
    assert archive.find(name) is None
    assert archive.push_bytes(name, b"first").stored  # PostgreSQL's retry of the same file
    assert stored_matches_recorded(archive, name)
