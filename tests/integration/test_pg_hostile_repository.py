"""Repository content is untrusted input: a base backup rewritten by someone who can write
to the repository (a shared bucket) must not get a file onto the host. Each crafted backup
below starts from a real one of a sandbox PostgreSQL, with its tar index rewritten (and the
manifest's hash of it updated, as an intruder would), and must be refused: exit 1, one line
naming the member, nothing written outside the target."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from drkit.adapters.postgres.tarindex import Member, members_from_json, members_to_json
from drkit.adapters.repository.codec import Codec, sha256
from drkit.config.loader import load_stack
from drkit.engines.core.workspace import open_workspace
from drkit.infra.ownership import chown_tree
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox
from tests.integration.pg_helpers import restore_dir


@pytest.fixture(scope="module")
def box() -> Iterator[SandboxHandle]:
    handle = make_sandbox("drkit-it-hostile-", services=("postgres",))
    yield handle
    destroy_sandbox(handle)


@pytest.fixture(scope="module")
def real_backup(box: SandboxHandle) -> str:
    result = run_drkit("--output", "json", "backup", config=box.config_path)
    assert result.code == 0, result.stderr
    return str(result.json()[0]["backup_id"])


def backups_dir(box: SandboxHandle) -> Path:
    return box.dir / "repo" / "sandbox" / "postgres" / "backups"


def codec(box: SandboxHandle) -> Codec:
    return open_workspace(load_stack(box.config_path)).codec


Rewrite = Callable[[list[Member], Path], list[Member]]


def crafted(box: SandboxHandle, source: str, new_id: str, rewrite: Rewrite, *, fix_hash: bool = True) -> None:
    """A copy of backup `source` as `new_id`, its tar index rewritten; the manifest's SHA-256
    of the index updated unless `fix_hash` is False."""
    src, dst = backups_dir(box) / source, backups_dir(box) / new_id
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["backup_id"] = new_id
    name = manifest["details"]["tar_index"]
    c = codec(box)
    members = members_from_json(c.decode((dst / name).read_bytes(), name=name))
    raw = members_to_json(rewrite(members, box.dir))
    stored = c.encode(raw)
    (dst / name).write_bytes(stored)
    if fix_hash:
        for f in manifest["files"]:
            if f["name"] == name:
                f.update(size=len(stored), sha256=sha256(stored), raw_size=len(raw))
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def data_of(members: list[Member], name: str) -> Member:
    return next(m for m in members if m.name == name)


def symlink_then_file(members: list[Member], outside: Path) -> list[Member]:
    # The file member's data is PG_VERSION's: today it is written through the link, as root.
    data = data_of(members, "PG_VERSION")
    link = Member("global/evil", "symlink", 0o777, 0, data.offset, str(outside / "canary"))
    return [*members, link, replace(data, name="global/evil")]


def dotdot(members: list[Member], outside: Path) -> list[Member]:
    return [*members, replace(data_of(members, "PG_VERSION"), name="base/../../../canary-dotdot")]


def absolute(members: list[Member], outside: Path) -> list[Member]:
    return [*members, replace(data_of(members, "PG_VERSION"), name=str(outside / "canary-absolute"))]


def device(members: list[Member], outside: Path) -> list[Member]:
    return [*members, Member("base/evil-device", "chardev", 0o666, 0, 0)]


def hardlink(members: list[Member], outside: Path) -> list[Member]:
    return [*members, Member("base/evil-hardlink", "hardlink", 0o600, 0, 0, str(outside / "canary"))]


def duplicate(members: list[Member], outside: Path) -> list[Member]:
    first = data_of(members, "PG_VERSION")
    other = next(m for m in members if m.type == "file" and m.size > 0 and m.name != "PG_VERSION")
    return [*members, replace(other, name="PG_VERSION", mode=first.mode)]


CASES: list[tuple[str, Rewrite, str]] = [
    ("symlink-then-file", symlink_then_file, "'global/evil' is a symlink"),
    ("dotdot", dotdot, "unsafe path 'base/../../../canary-dotdot'"),
    ("absolute", absolute, "unsafe path '/"),
    ("device", device, "'base/evil-device' is a chardev"),
    ("hardlink", hardlink, "'base/evil-hardlink' is a hardlink"),
    ("duplicate", duplicate, "'PG_VERSION' appears twice"),
]


def outside_state(box: SandboxHandle) -> dict[str, bytes | None]:
    """What lies outside the target: the canary, and every name beside it."""
    names = sorted(p.name for p in box.dir.iterdir())
    canary = box.dir / "canary"
    return {"names": "\n".join(names).encode(), "canary": canary.read_bytes() if canary.exists() else None}


def refused(box: SandboxHandle, backup_id: str, case: str) -> str:
    canary = box.dir / "canary"
    canary.write_bytes(b"original canary\n")
    dest = restore_dir(box.dir, f"hostile-{case}", box.box.os_user)
    before = outside_state(box)
    restores_before = sorted(p.name for p in dest.parent.iterdir())
    result = run_drkit(
        "restore", "postgres", "--backup", backup_id, "--to", str(dest), config=box.config_path
    )
    assert outside_state(box) == before, "something was written outside the target"
    assert result.code == 1, result.stdout + result.stderr
    assert sorted(p.name for p in dest.parent.iterdir()) == restores_before
    assert not (box.dir.parent / "canary-dotdot").exists()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(("case", "rewrite", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_crafted_base_backup_is_refused_and_writes_nothing_outside(
    box: SandboxHandle, real_backup: str, case: str, rewrite: Rewrite, message: str
) -> None:
    backup_id = f"{real_backup}-{case}"
    crafted(box, real_backup, backup_id, rewrite)
    line = refused(box, backup_id, case)
    assert message in line and "refusing" in line


def test_a_tampered_tar_index_is_refused_before_it_is_used(box: SandboxHandle, real_backup: str) -> None:
    # Harmless-looking (one more directory), but not the index the manifest recorded.
    def extra_dir(members: list[Member], outside: Path) -> list[Member]:
        return [*members, Member("pg_extra", "dir", 0o700, 0, 0)]

    backup_id = f"{real_backup}-tampered-index"
    crafted(box, real_backup, backup_id, extra_dir, fix_hash=False)
    line = refused(box, backup_id, "tampered-index")
    assert "tar index tarindex.json" in line and "does not match its SHA-256" in line


def test_the_untouched_backup_still_restores(box: SandboxHandle, real_backup: str) -> None:
    """The checks refuse crafted backups, not real ones."""
    dest = restore_dir(box.dir, "genuine", box.box.os_user)
    result = run_drkit(
        "--output",
        "json",
        "restore",
        "postgres",
        "--backup",
        real_backup,
        "--to",
        str(dest),
        config=box.config_path,
    )
    assert result.code == 0, result.stderr
    assert (dest / "PG_VERSION").read_text().strip().isdigit()


# --- Signed manifests: with a sign_key, a changed or unsigned manifest is refused before
# anything is restored or verified.

SIGN_ENV = {"DRKIT_SIGN_KEY": "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"}


@pytest.fixture(scope="module")
def signed_box() -> Iterator[SandboxHandle]:
    handle = make_sandbox("drkit-it-signed-", services=("postgres",))
    text = handle.config_path.read_text()
    assert "    type: fs\n" in text
    # wal-push and wal-fetch sign and check WAL: the database's OS user reads the key too.
    key = handle.dir / "sign.key"
    key.write_text(SIGN_ENV["DRKIT_SIGN_KEY"] + "\n")
    chown_tree(key, handle.box.os_user)
    signed = text.replace("    type: fs\n", f"    type: fs\n    sign_key: file:{key}\n", 1)
    handle.config_path.write_text(signed)
    yield handle
    handle.config_path.write_text(text)  # the sandbox's own code reads it to stop it
    destroy_sandbox(handle)


def test_a_signed_backup_restores_and_a_changed_or_unsigned_manifest_is_refused(
    signed_box: SandboxHandle,
) -> None:
    box = signed_box
    made = run_drkit("--output", "json", "backup", config=box.config_path, env=SIGN_ENV)
    assert made.code == 0, made.stderr
    backup_id = made.json()[0]["backup_id"]
    manifest = backups_dir(box) / backup_id / "manifest.json"
    signature = manifest.with_name("manifest.json.sig")
    assert signature.read_text().startswith("hmac-sha256:")

    dest = restore_dir(box.dir, "signed", box.box.os_user)
    ok = run_drkit(
        "restore", "postgres", "--backup", backup_id, "--to", str(dest), config=box.config_path, env=SIGN_ENV
    )
    assert ok.code == 0, ok.stderr

    original = manifest.read_bytes()
    changed = json.loads(original)
    changed["postgres"]["stop_lsn"] = "0/FFFFFFFF"  # what an intruder might want to move
    manifest.write_text(json.dumps(changed, indent=2, sort_keys=True))
    for command in (
        ["restore", "postgres", "--backup", backup_id, "--to", str(dest) + "-2"],
        ["verify", backup_id],
    ):
        bad = run_drkit(*command, config=box.config_path, env=SIGN_ENV)
        assert bad.code == 1, bad.stdout + bad.stderr
        assert "manifest.json has a wrong signature" in bad.stderr
    assert not Path(str(dest) + "-2").exists()

    manifest.write_bytes(original)
    signature.unlink()
    unsigned = run_drkit(
        "restore",
        "postgres",
        "--backup",
        backup_id,
        "--to",
        str(dest) + "-3",
        config=box.config_path,
        env=SIGN_ENV,
    )
    assert unsigned.code == 1
    assert "is not signed, and repository 'local' sign_key (file:" in unsigned.stderr
    assert not Path(str(dest) + "-3").exists()
