"""With a sign_key, what a restore replays is authenticated (engines/core/signing.py, wal/):
every WAL segment and history file through its signed `.sha256` sidecar, a streamed partial
through its own signature; wal-fetch refuses anything else with exit 126. Push (archive and
stream), sync and prune keep the signatures with the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from drkit.adapters.repository.codec import Codec, sha256
from drkit.adapters.repository.fs import FsRepository
from drkit.config.loader import load_stack
from drkit.domain.errors import IntegrityError
from drkit.engines.core.signing import SigningRepository
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.ops.sync import sync
from drkit.engines.postgres.wal.archive import WalArchive, timeline_paths
from drkit.engines.postgres.wal.stream import SpoolPusher
from tests.conftest import run_drkit
from tests.unit.test_wal_identity import wal

KEY = "wal-sign-key-0123456789abcdef0123"
COPY_KEY = "copy-sign-key-fedcba9876543210fed"
SEG = "000000010000000000000003"
PARTIAL = "000000010000000000000004.partial"
HISTORY = "00000002.history"
TLI = "demo/postgres/wal/00000001"


def stack_yaml(tmp_path: Path, *, copy_key: str | None = None) -> Path:
    (tmp_path / "sign.key").write_text(KEY + "\n")
    repos: dict[str, object] = {
        "local": {"type": "fs", "path": str(tmp_path / "repo"), "sign_key": f"file:{tmp_path / 'sign.key'}"},
        "copy": {"type": "fs", "path": str(tmp_path / "copy")},
    }
    if copy_key:
        (tmp_path / "copy.key").write_text(copy_key + "\n")
        repos["copy"] = {**repos["copy"], "sign_key": f"file:{tmp_path / 'copy.key'}"}  # type: ignore[dict-item]
    path = tmp_path / "stack.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "stack": "demo",
                "state_dir": str(tmp_path / "state"),
                "repository": "local",
                "repositories": repos,
                "services": {"postgres": {"kind": "postgres"}},
            }
        )
    )
    return path


@pytest.fixture
def signed(tmp_path: Path) -> Workspace:
    ws = open_workspace(load_stack(stack_yaml(tmp_path)))
    assert isinstance(ws.repo, SigningRepository)
    return ws


def archive(ws: Workspace) -> WalArchive:
    return WalArchive(ws.repo, "demo", "postgres", ws.codec)


def plain(tmp_path: Path) -> FsRepository:
    """The repository as whoever can write it sees it: no key."""
    return FsRepository(tmp_path / "repo")


def fetch(tmp_path: Path, name: str) -> tuple[int, str]:
    result = run_drkit("wal-fetch", name, str(tmp_path / "RECOVERYXLOG"), config=tmp_path / "stack.yaml")
    return result.code, result.stderr


def test_a_pushed_segment_is_signed_and_fetched(signed: Workspace, tmp_path: Path) -> None:
    segment = tmp_path / SEG
    segment.write_bytes(wal(SEG))
    assert run_drkit("wal-push", str(segment), config=tmp_path / "stack.yaml").code == 0
    sidecar = plain(tmp_path).get(f"{TLI}/{SEG}.sha256").decode().splitlines()
    assert sidecar[0] == sha256(wal(SEG)) and sidecar[1].startswith("hmac-sha256:")
    assert fetch(tmp_path, SEG)[0] == 0
    assert (tmp_path / "RECOVERYXLOG").read_bytes() == wal(SEG)


def test_a_segment_rewritten_with_its_hash_recomputed_is_refused(signed: Workspace, tmp_path: Path) -> None:
    archive(signed).push_bytes(SEG, wal(SEG))
    forged = wal(SEG, body=b"an intruder's records")
    repo = plain(tmp_path)
    repo.put(f"{TLI}/{SEG}.zst", Codec().encode(forged))
    signature = repo.get(f"{TLI}/{SEG}.sha256").decode().partition("\n")[2]
    for sidecar in (sha256(forged), f"{sha256(forged)}\n{signature}"):  # unsigned; the old signature
        repo.put(f"{TLI}/{SEG}.sha256", sidecar.encode())
        code, stderr = fetch(tmp_path, SEG)
        assert code == 126, stderr
        assert "sha256" in stderr and ("wrong signature" in stderr or "not signed" in stderr), stderr
        assert not (tmp_path / "RECOVERYXLOG").exists()


def test_a_missing_or_borrowed_sidecar_is_refused(signed: Workspace, tmp_path: Path) -> None:
    other = "000000010000000000000005"
    archive(signed).push_bytes(SEG, wal(SEG))
    archive(signed).push_bytes(other, wal(other))
    repo = plain(tmp_path)
    repo.put(f"{TLI}/{other}.zst", repo.get(f"{TLI}/{SEG}.zst"))  # moved with its signed hash
    repo.put(f"{TLI}/{other}.sha256", repo.get(f"{TLI}/{SEG}.sha256"))
    assert fetch(tmp_path, other)[0] == 126
    repo.delete(f"{TLI}/{SEG}.sha256")
    code, stderr = fetch(tmp_path, SEG)
    assert code == 126 and "no signed hash sidecar" in stderr, stderr


def test_a_rewritten_history_file_stops_the_plan(signed: Workspace, tmp_path: Path) -> None:
    archive(signed).push_bytes(HISTORY, b"1\t0/3000000\tno recovery target specified\n")
    names = archive(signed).names()
    assert 2 in timeline_paths(archive(signed), names)
    forged = b"1\t0/9000000\tno recovery target specified\n"
    repo = plain(tmp_path)
    repo.put(f"demo/postgres/wal/00000002/{HISTORY}.zst", Codec().encode(forged))
    repo.put(f"demo/postgres/wal/00000002/{HISTORY}.sha256", sha256(forged).encode())
    with pytest.raises(IntegrityError, match="not signed"):
        timeline_paths(archive(signed), names)
    assert fetch(tmp_path, HISTORY)[0] == 126


def test_a_streamed_partial_is_signed_and_a_changed_one_refused(signed: Workspace, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / PARTIAL).write_bytes(wal(PARTIAL[:24]))
    assert SpoolPusher(archive(signed), spool).push_ready() == [PARTIAL]
    key = f"{TLI}/{PARTIAL}.zst"
    assert plain(tmp_path).exists(key + ".sig")
    assert archive(signed).read(PARTIAL[:24]) == wal(PARTIAL[:24])  # served in the segment's place
    plain(tmp_path).put(key, Codec().encode(wal(PARTIAL[:24], body=b"forged")))
    with pytest.raises(IntegrityError, match="wrong signature"):
        archive(signed).read(PARTIAL[:24])
    archive(signed).delete(PARTIAL)  # prune: the signature goes with the file
    assert not [k for k in plain(tmp_path).list("demo/") if "partial" in k]


@pytest.mark.parametrize("copy_key", [None, COPY_KEY])
def test_sync_keeps_wal_signed_at_the_copy(tmp_path: Path, copy_key: str | None) -> None:
    ws = open_workspace(load_stack(stack_yaml(tmp_path, copy_key=copy_key)))
    archive(ws).push_bytes(SEG, wal(SEG))
    (report,) = sync(ws)
    copy = FsRepository(tmp_path / "copy")
    sidecar = copy.get(f"{TLI}/{SEG}.sha256")
    assert sidecar.startswith(sha256(wal(SEG)).encode() + b"\nhmac-sha256:")
    assert json.loads(copy.get("demo/postgres/wal/identity.json"))["system_identifier"]
    if copy_key:  # re-signed there with its own key: the copy restores with its key
        assert sidecar != plain(tmp_path).get(f"{TLI}/{SEG}.sha256")
        ws_copy = open_workspace(ws.stack, repository="copy")
        assert archive(ws_copy).read(SEG) == wal(SEG)
    else:  # as they are, signatures included
        assert sidecar == plain(tmp_path).get(f"{TLI}/{SEG}.sha256")
    assert report.not_copied == []


def test_verify_rereads_wal_through_the_same_checks_as_wal_fetch(signed: Workspace, tmp_path: Path) -> None:
    """`drkit verify` must fail what `wal-fetch` would refuse: an unsigned sidecar with a
    recomputed hash passes a bare hash check but not the signed one."""
    from drkit.engines.postgres.wal_check import WalRehash

    archive(signed).push_bytes(SEG, wal(SEG))
    assert not WalRehash(archive(signed)).check([SEG]).damaged
    forged = wal(SEG, body=b"an intruder's records")
    repo = plain(tmp_path)
    repo.put(f"{TLI}/{SEG}.zst", Codec().encode(forged))
    repo.put(f"{TLI}/{SEG}.sha256", sha256(forged).encode())
    (damaged,) = WalRehash(archive(signed)).check([SEG]).damaged
    assert "not signed" in (damaged.problem or "") or "signature" in (damaged.problem or ""), damaged
