"""How bytes are stored: zstd, then (optionally) age. Both standard, both restorable by hand:
`age -d -i key.txt FILE.zst.age | zstd -d`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import zstandard

from drkit.domain.errors import ConfigError, DecryptionError, IntegrityError


@dataclass(frozen=True)
class Codec:
    level: int = 1
    recipients: tuple[str, ...] = ()
    identity: str | None = None

    @property
    def encrypted(self) -> bool:
        return bool(self.recipients)

    @property
    def suffix(self) -> str:
        return ".zst.age" if self.encrypted else ".zst"

    def encode(self, raw: bytes) -> bytes:
        # write_checksum: a damaged frame fails to decode instead of yielding other bytes.
        data: bytes = zstandard.ZstdCompressor(level=self.level, write_checksum=True).compress(raw)
        if self.recipients:
            data = encrypt(data, self.recipients)
        return data

    def decode(self, stored: bytes, *, name: str, encrypted: bool | None = None) -> bytes:
        if encrypted if encrypted is not None else is_encrypted(stored, name):
            stored = decrypt(stored, self.identity, name=name)
        try:
            out: bytes = zstandard.ZstdDecompressor().decompress(stored, max_output_size=1 << 31)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{name}: not valid zstd data ({exc})") from exc
        return out

    def decode_into(self, stored: bytes, buffer: bytearray, *, name: str) -> Iterator[int]:
        """Decode in pieces: each step fills the start of `buffer` and yields how many bytes.

        One reused buffer that stays in the CPU cache between decompression and the write
        that copies it out: writing a whole 16 MiB part at once is about half as fast here.
        """
        if is_encrypted(stored, name):
            stored = decrypt(stored, self.identity, name=name)
        reader = zstandard.ZstdDecompressor().stream_reader(stored, read_size=len(buffer))
        with reader:
            while True:
                try:
                    n = reader.readinto(buffer)
                except zstandard.ZstdError as exc:
                    raise IntegrityError(f"{name}: not valid zstd data ({exc})") from exc
                if not n:
                    return
                yield n


AGE_MAGIC = b"age-encryption.org/"


def is_encrypted(stored: bytes, name: str = "") -> bool:
    """age data: by its name (`.age`), or by its header (`drkit sync` keeps a plain
    repository's names when it encrypts a copy: docs/offsite.md)."""
    return name.endswith(".age") or stored[: len(AGE_MAGIC)] == AGE_MAGIC


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encrypt(data: bytes, recipients: tuple[str, ...]) -> bytes:
    import pyrage

    try:
        keys = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
    except Exception as exc:
        raise ConfigError(f"encryption: bad age recipient ({exc})") from exc
    out: bytes = pyrage.encrypt(data, keys)
    return out


def parse_identity(text: str) -> str:
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            return line
    raise DecryptionError("the age identity holds no AGE-SECRET-KEY line")


def decrypt(data: bytes, identity: str | None, *, name: str) -> bytes:
    import pyrage

    if not identity:
        raise DecryptionError(
            f"{name} is encrypted and no age identity is configured",
            hint="set encryption.identity to file:/path/key.txt or env:NAME",
        )
    try:
        key = pyrage.x25519.Identity.from_str(parse_identity(identity))
    except DecryptionError:
        raise
    except Exception as exc:
        raise DecryptionError(f"the age identity is not valid ({exc})") from exc
    try:
        out: bytes = pyrage.decrypt(data, [key])
    except Exception as exc:
        raise DecryptionError(f"cannot decrypt {name}: wrong age identity or damaged file") from exc
    return out
