"""Signed manifests and sets, for repositories that others can write (a shared bucket).

With `sign_key` set on the repository, every manifest (`.../backups/ID/manifest.json`) and
every stack-wide set (`STACK/sets/ID.json`) is written with a signature beside it
(`manifest.json.sig`): HMAC-SHA256 over the object's key and its bytes, so a signed manifest
cannot be edited, nor moved to another backup's place. Whatever reads one through the
workspace's repository (listing, restore, verify) gets it only once its signature checks
out; an unsigned or wrongly signed one is an IntegrityError. The manifest holds the SHA-256
of every file of the backup (the tar index included), so the signature covers the backup.

Without a key nothing is signed or checked, as before.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
from dataclasses import dataclass

from drkit.adapters.repository.port import Entry, Repository, Stray
from drkit.domain.backup import MANIFEST_NAME
from drkit.domain.errors import ConfigError, IntegrityError
from drkit.domain.stack import RepositorySpec

SIGNATURE_SUFFIX = ".sig"
SCHEME = "hmac-sha256"
MIN_KEY_CHARS = 16


def is_signed_key(key: str) -> bool:
    """Manifests and sets: what the signature protects."""
    parts = key.split("/")
    manifest = len(parts) == 5 and parts[2] == "backups" and parts[4] == MANIFEST_NAME
    a_set = len(parts) == 3 and parts[1] == "sets" and parts[2].endswith(".json")
    return manifest or a_set


@dataclass(frozen=True)
class Signer:
    key: bytes | None  # None: configured but not readable here
    source: str  # for messages: "repository 'shared' sign_key (env:DRKIT_SIGN_KEY)"

    def _mac(self, key: str, data: bytes) -> str:
        if self.key is None:
            raise ConfigError(f"{self.source} is not readable: it is needed to read or write backups")
        message = b"drkit-signed-v1\0" + key.encode() + b"\0" + data
        return f"{SCHEME}:{hmac.new(self.key, message, hashlib.sha256).hexdigest()}\n"

    def sign(self, key: str, data: bytes) -> bytes:
        return self._mac(key, data).encode()

    def check(self, key: str, data: bytes, signature: bytes | None) -> None:
        expected = self._mac(key, data)
        if signature is None:
            raise IntegrityError(f"{key} is not signed, and {self.source} requires signatures; refusing")
        if not hmac.compare_digest(signature.strip(), expected.strip().encode()):
            raise IntegrityError(
                f"{key} has a wrong signature (changed, or signed with another key); refusing"
            )


def signer_for(spec: RepositorySpec) -> Signer | None:
    if spec.sign_key_ref is None:
        return None
    source = f"repository {spec.name!r} sign_key ({spec.sign_key_ref})"
    if spec.sign_key is not None and len(spec.sign_key) < MIN_KEY_CHARS:
        raise ConfigError(f"{source} is too short: use at least 32 random characters (openssl rand -hex 32)")
    return Signer(spec.sign_key.encode() if spec.sign_key is not None else None, source)


class SigningRepository:
    """A repository whose manifests and sets are signed on put and checked on get."""

    def __init__(self, inner: Repository, signer: Signer) -> None:
        self.inner, self.signer = inner, signer

    @property
    def location(self) -> str:
        return self.inner.location

    def put(self, key: str, data: bytes, *, overwrite: bool = True) -> None:
        if is_signed_key(key):
            # The signature first: the object it signs is the commit point.
            self.inner.put(key + SIGNATURE_SUFFIX, self.signer.sign(key, data), overwrite=overwrite)
        self.inner.put(key, data, overwrite=overwrite)

    def get(self, key: str) -> bytes:
        data = self.inner.get(key)
        if is_signed_key(key):
            try:
                signature: bytes | None = self.inner.get(key + SIGNATURE_SUFFIX)
            except FileNotFoundError:
                signature = None
            self.signer.check(key, data, signature)
        return data

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def list(self, prefix: str) -> builtins.list[str]:
        return self.inner.list(prefix)

    def entries(self, prefix: str) -> builtins.list[Entry]:
        return self.inner.entries(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        if is_signed_key(key) and self.inner.exists(key + SIGNATURE_SUFFIX):
            self.inner.delete(key + SIGNATURE_SUFFIX)

    def delete_tree(self, prefix: str) -> None:
        self.inner.delete_tree(prefix)

    def strays(self, prefix: str) -> builtins.list[Stray]:
        return self.inner.strays(prefix)

    def remove_stray(self, stray: Stray) -> None:
        self.inner.remove_stray(stray)

    def replace_if(self, key: str, data: bytes, *, expected: bytes) -> bool:
        if is_signed_key(key):  # a signed object is only ever written with its signature
            raise IntegrityError(f"{key} is signed: it is never replaced in place")
        return self.inner.replace_if(key, data, expected=expected)

    def check_writable(self) -> None:
        self.inner.check_writable()


def with_signing(repo: Repository, spec: RepositorySpec) -> Repository:
    signer = signer_for(spec)
    return repo if signer is None else SigningRepository(repo, signer)
