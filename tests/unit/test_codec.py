"""The codec writes standard zstd and age: the stock `zstd` and `age` tools must read it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyrage
import pytest

from drkit.adapters.repository.codec import Codec, parse_identity, sha256
from drkit.domain.errors import ConfigError, DecryptionError, IntegrityError

RAW = b"PostgreSQL tar stream " * 2000 + bytes(range(256))


@pytest.fixture(scope="module")
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


def needs(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def test_plain_round_trip_and_suffix() -> None:
    codec = Codec(level=3)
    stored = codec.encode(RAW)
    assert codec.suffix == ".zst"
    assert not codec.encrypted
    assert len(stored) < len(RAW)
    assert codec.decode(stored, name="base.00000.tar.zst") == RAW


def test_encrypted_round_trip_and_suffix(identity: pyrage.x25519.Identity) -> None:
    codec = Codec(recipients=(str(identity.to_public()),), identity=str(identity))
    stored = codec.encode(RAW)
    assert codec.suffix == ".zst.age"
    assert codec.encrypted
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert codec.decode(stored, name="base.00000.tar.zst.age") == RAW
    # The name decides by default; `encrypted=` overrides it.
    assert codec.decode(stored, name="blob", encrypted=True) == RAW


def test_the_zstd_tool_reads_concatenated_parts(tmp_path: Path) -> None:
    """What docs/manual-restore.md relies on: `cat base.*.tar.zst | zstd -d`."""
    zstd = needs("zstd")
    codec = Codec()
    parts = [codec.encode(RAW[:1000]), codec.encode(RAW[1000:20000]), codec.encode(RAW[20000:])]
    out = subprocess.run(
        [zstd, "-d", "-q", "-c"], input=b"".join(parts), capture_output=True, check=True, timeout=30
    )
    assert out.stdout == RAW


def test_the_age_tool_decrypts_each_part(tmp_path: Path, identity: pyrage.x25519.Identity) -> None:
    age, zstd = needs("age"), needs("zstd")
    key = tmp_path / "key.txt"
    key.write_text(f"# created: by a test\n# public key: {identity.to_public()}\n{identity}\n")
    codec = Codec(recipients=(str(identity.to_public()),))
    part = tmp_path / "base.00000.tar.zst.age"
    part.write_bytes(codec.encode(RAW))
    decrypted = subprocess.run(
        [age, "-d", "-i", str(key), str(part)], capture_output=True, check=True, timeout=30
    )
    out = subprocess.run(
        [zstd, "-d", "-q", "-c"], input=decrypted.stdout, capture_output=True, check=True, timeout=30
    )
    assert out.stdout == RAW


def test_garbage_is_an_integrity_error_naming_the_file() -> None:
    stored = Codec().encode(RAW)
    with pytest.raises(IntegrityError, match=r"base\.00003\.tar\.zst: not valid zstd data"):
        Codec().decode(stored[: len(stored) // 2], name="base.00003.tar.zst")
    with pytest.raises(IntegrityError, match=r"base\.00003\.tar\.zst: not valid zstd data"):
        Codec().decode(b"not zstd at all", name="base.00003.tar.zst")


def test_one_changed_byte_is_an_integrity_error() -> None:
    stored = bytearray(Codec().encode(RAW))
    stored[len(stored) // 2] ^= 0xFF
    with pytest.raises(IntegrityError, match=r"base\.00003\.tar\.zst: not valid zstd data"):
        Codec().decode(bytes(stored), name="base.00003.tar.zst")


def test_decrypt_without_identity(identity: pyrage.x25519.Identity) -> None:
    stored = Codec(recipients=(str(identity.to_public()),)).encode(RAW)
    with pytest.raises(DecryptionError, match="x.zst.age is encrypted and no age identity") as exc:
        Codec().decode(stored, name="x.zst.age")
    assert exc.value.hint is not None


def test_decrypt_with_the_wrong_identity(identity: pyrage.x25519.Identity) -> None:
    stored = Codec(recipients=(str(identity.to_public()),)).encode(RAW)
    wrong = Codec(identity=str(pyrage.x25519.Identity.generate()))
    with pytest.raises(DecryptionError, match="cannot decrypt x.zst.age: wrong age identity"):
        wrong.decode(stored, name="x.zst.age")


def test_a_damaged_encrypted_file_is_a_decryption_error(identity: pyrage.x25519.Identity) -> None:
    codec = Codec(recipients=(str(identity.to_public()),), identity=str(identity))
    stored = bytearray(codec.encode(RAW))
    stored[-10] ^= 0x01
    with pytest.raises(DecryptionError, match="damaged file"):
        codec.decode(bytes(stored), name="x.zst.age")


def test_identity_text_without_a_key_and_an_invalid_key() -> None:
    with pytest.raises(DecryptionError, match="no AGE-SECRET-KEY line"):
        parse_identity("# only a comment\n")
    with pytest.raises(DecryptionError, match="the age identity is not valid"):
        Codec(identity="AGE-SECRET-KEY-1NOTAKEY").decode(b"age", name="x.age")


def test_identity_file_content_with_comments(identity: pyrage.x25519.Identity) -> None:
    text = f"# created: 2026-02-09\n# public key: {identity.to_public()}\n{identity}\n"
    assert parse_identity(text) == str(identity)


def test_a_bad_recipient_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad age recipient"):
        Codec(recipients=("age1notakey",)).encode(b"x")


def test_sha256_is_hex() -> None:
    assert sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
