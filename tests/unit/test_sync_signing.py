"""`drkit sync` with signed repositories (core/signing.py): a destination with a sign_key gets
every manifest and set signed with its own key after the source's signature checked out, so
`verify --repo` accepts the copy; nothing unsigned or wrongly signed is copied there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from drkit.adapters.repository.fs import FsRepository
from drkit.config.loader import load_stack
from drkit.domain.backup import Manifest
from drkit.domain.errors import ConfigError, IntegrityError
from drkit.domain.stack import Stack
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.set_refs import list_sets
from drkit.engines.core.signing import SigningRepository
from drkit.engines.core.workspace import Workspace, open_workspace
from drkit.engines.ops.copies import copies
from drkit.engines.ops.sync import sync
from drkit.engines.stack.verify import verify_repository
from tests.unit.test_sync import _backup, _fill, _stack

SOURCE_KEY = "source-key-0123456789abcdef0123456789"
COPY_KEY = "copy-key-fedcba9876543210fedcba98765"
SET = "sandbox/sets/20261125T020000Z-set.json"


def _signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None, copy: str | None, **kw: Any
) -> Stack:
    """_stack's two repositories, each with a sign_key when given one."""
    path = _stack(tmp_path, **kw)
    config = yaml.safe_load(path.read_text())
    for name, key in (("local", source), ("copy", copy)):
        if key is not None:
            monkeypatch.setenv(f"DRKIT_TEST_SIGN_{name.upper()}", key)
            config["repositories"][name]["sign_key"] = f"env:DRKIT_TEST_SIGN_{name.upper()}"
    path.write_text(yaml.safe_dump(config))
    return load_stack(path)


def _manifest(m: Manifest) -> str:
    return f"sandbox/redis/backups/{m.backup_id}/manifest.json"


def _copy_checks_out(stack: Stack, m: Manifest) -> Workspace:
    ws_copy = open_workspace(stack, repository="copy")
    assert isinstance(ws_copy.repo, SigningRepository)
    listing = list_backups(ws_copy.repo, "sandbox", "redis")
    assert [x.backup_id for x in listing.complete] == [m.backup_id] and not listing.damaged
    assert [s.set_id for s in list_sets(ws_copy)] == ["20261125T020000Z-set"]
    assert verify_repository(ws_copy).ok
    return ws_copy


def test_a_signed_copy_with_its_own_key_is_re_signed_and_verifies_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _signed(tmp_path, monkeypatch, SOURCE_KEY, COPY_KEY)
    ws = open_workspace(stack)
    m = _fill(ws)

    (report,) = sync(ws)

    _copy_checks_out(stack, m)
    copy = FsRepository(str(tmp_path / "copy"))
    for key in (_manifest(m), SET):
        assert copy.get(key) == ws.repo.get(key), "the object itself is the source's"
        assert copy.get(key + ".sig") != FsRepository(str(tmp_path / "repo")).get(key + ".sig")
    assert report.backups == [f"redis/{m.backup_id}"] and report.not_copied == []
    (again,) = sync(ws)
    assert again.copied == 0
    assert [c.repositories for c in copies(ws) if c.service == "redis"] == [("copy", "local")]


def test_a_copy_sharing_the_key_gets_the_same_signatures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _signed(tmp_path, monkeypatch, SOURCE_KEY, SOURCE_KEY)
    ws = open_workspace(stack)
    m = _fill(ws)
    sync(ws)
    _copy_checks_out(stack, m)
    source, copy = FsRepository(str(tmp_path / "repo")), FsRepository(str(tmp_path / "copy"))
    for key in (_manifest(m), SET):
        assert copy.get(key + ".sig") == source.get(key + ".sig")


def test_an_unsigned_source_is_refused_before_anything_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace(_signed(tmp_path, monkeypatch, None, COPY_KEY))
    _fill(ws)
    with pytest.raises(
        ConfigError, match="repository 'copy' has a sign_key and the source repository 'local'"
    ):
        sync(ws)
    assert not FsRepository(str(tmp_path / "copy")).list("sandbox/")


def test_a_manifest_without_a_good_signature_at_the_source_is_not_copied_and_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _signed(tmp_path, monkeypatch, SOURCE_KEY, COPY_KEY)
    ws = open_workspace(stack)
    m = _fill(ws)
    planted = _backup(ws, "20261125T040000Z-rdb")
    FsRepository(str(tmp_path / "repo")).delete(_manifest(planted) + ".sig")  # by someone without the key

    (report,) = sync(ws)

    assert report.not_copied == [f"redis/{planted.backup_id}: {_manifest(planted)} is not signed, and "
                                 "repository 'local' sign_key (env:DRKIT_TEST_SIGN_LOCAL) requires "
                                 "signatures; refusing"]  # fmt: skip
    assert not FsRepository(str(tmp_path / "copy")).list(f"sandbox/redis/backups/{planted.backup_id}/")
    _copy_checks_out(stack, m)


def test_a_set_with_a_wrong_signature_at_the_source_stops_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = open_workspace(_signed(tmp_path, monkeypatch, SOURCE_KEY, COPY_KEY))
    _fill(ws)
    FsRepository(str(tmp_path / "repo")).put(SET + ".sig", b"hmac-sha256:" + b"0" * 64 + b"\n")
    with pytest.raises(IntegrityError, match=f"{SET} has a wrong signature .*; refusing: not copied to"):
        sync(ws)
    assert not FsRepository(str(tmp_path / "copy")).exists(SET)


def test_a_copy_an_older_sync_left_unsigned_is_signed_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a sync before signed copies left: the manifest and set there without a signature
    (listed as damaged there). The next run signs them; the files are not sent again."""
    stack = _signed(tmp_path, monkeypatch, SOURCE_KEY, COPY_KEY)
    ws = open_workspace(stack)
    m = _fill(ws)
    sync(ws)
    copy = FsRepository(str(tmp_path / "copy"))
    copy.delete(_manifest(m) + ".sig")
    copy.delete(SET + ".sig")
    assert list_backups(open_workspace(stack, repository="copy").repo, "sandbox", "redis").damaged
    assert [c.repositories for c in copies(ws) if c.service == "redis"] == [("local",)]

    (healed,) = sync(ws)

    _copy_checks_out(stack, m)
    assert healed.copied == 2  # the manifest and the set, each with its signature written first


def test_an_unsigned_copy_keeps_the_source_signatures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination without a sign_key checks nothing; it gets the source's signatures beside
    the unchanged manifest and set, so a stack.yaml with the source's key can read it."""
    stack = _signed(tmp_path, monkeypatch, SOURCE_KEY, None)
    ws = open_workspace(stack)
    m = _fill(ws)
    sync(ws)
    source, copy = FsRepository(str(tmp_path / "repo")), FsRepository(str(tmp_path / "copy"))
    for key in (_manifest(m), SET):
        assert copy.get(key + ".sig") == source.get(key + ".sig")
    reader = _signed(tmp_path, monkeypatch, SOURCE_KEY, SOURCE_KEY)  # the copy, read with that key
    _copy_checks_out(reader, m)


def test_an_encrypted_signed_copy_signs_its_own_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = pyrage.x25519.Identity.generate()
    stack = _signed(
        tmp_path, monkeypatch, SOURCE_KEY, COPY_KEY, encrypt=str(key.to_public()), identity=str(key)
    )
    ws = open_workspace(stack)
    m = _fill(ws)
    sync(ws)
    ws_copy = _copy_checks_out(stack, m)
    copied = Manifest.from_json(ws_copy.repo.get(_manifest(m)))
    assert copied.encrypted and copied.details["encrypted_copy"]["from"] == "local"


def test_a_signed_copy_whose_key_is_not_readable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _signed(tmp_path, monkeypatch, SOURCE_KEY, COPY_KEY)
    monkeypatch.delenv("DRKIT_TEST_SIGN_COPY")
    stack = load_stack(tmp_path / "stack.yaml", strict_secrets=False)
    ws = open_workspace(stack)
    _fill(ws)
    with pytest.raises(ConfigError, match="repository 'copy' sign_key .* is not readable"):
        sync(ws)
    assert not FsRepository(str(tmp_path / "copy")).list("sandbox/")
