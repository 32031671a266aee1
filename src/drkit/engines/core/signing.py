"""Signed manifests, sets and WAL, for repositories that others can write (a shared bucket).

With `sign_key` set on the repository, every manifest (`.../backups/ID/manifest.json`) and
every stack-wide set (`STACK/sets/ID.json`) is written with a signature beside it
(`manifest.json.sig`): HMAC-SHA256 over the object's key and its bytes, so a signed manifest
cannot be edited, nor moved to another backup's place. Whatever reads one through the
workspace's repository (listing, restore, verify) gets it only once its signature checks
out; an unsigned or wrongly signed one is an IntegrityError. The manifest holds the SHA-256
of every file of the backup (the tar index included), so the signature covers the backup.

The WAL a restore replays is covered the same way. A WAL file's `.sha256` sidecar (the hash
of its raw content) carries its signature inside, on a second line: the sidecar is the one
atomic create-if-absent that decides which content a name holds, so its signature must be
written by the same put (a `.sig` beside it could disagree with it after a race or a kill).
A fetch authenticates the sidecar, then compares the segment's content with it
(engines/postgres/wal/archive.py). A streamed `.partial`, rewritten in place as it grows
and without a sidecar, is signed like a manifest.

Without a key nothing is signed or checked, as before.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import os
import pwd
from dataclasses import dataclass

from drkit.adapters.repository.port import Entry, Repository, Stray
from drkit.domain.backup import MANIFEST_NAME
from drkit.domain.errors import ConfigError, IntegrityError
from drkit.domain.stack import RepositorySpec

SIGNATURE_SUFFIX = ".sig"
SCHEME = "hmac-sha256"
MIN_KEY_CHARS = 16
PARTIAL_SUFFIXES = (".partial.zst", ".partial.zst.age")


def is_signed_key(key: str) -> bool:
    """What is signed by a `.sig` beside it: manifests, sets and streamed WAL partials."""
    parts = key.split("/")
    manifest = len(parts) == 5 and parts[2] == "backups" and parts[4] == MANIFEST_NAME
    a_set = len(parts) == 3 and parts[1] == "sets" and parts[2].endswith(".json")
    partial = len(parts) == 5 and parts[2] == "wal" and parts[4].endswith(PARTIAL_SUFFIXES)
    return manifest or a_set or partial


def is_embedded_key(key: str) -> bool:
    """What carries its signature inside, on a second line: WAL hash sidecars. (The WAL
    archive's identity is not signed: whoever changes it can only make fetches refuse, and
    the segments it vouches for are signed themselves.)"""
    parts = key.split("/")
    return len(parts) == 5 and parts[2] == "wal" and parts[4].endswith(".sha256")


def payload(raw: bytes) -> bytes:
    """The content of an embedded-signed object without its signature line."""
    return raw.split(b"\n", 1)[0]


def requires_signatures(repo: Repository) -> bool:
    """True when reads through `repo` must be signed (a repository with a sign_key)."""
    return isinstance(repo, SigningRepository)


@dataclass(frozen=True)
class Signer:
    key: bytes | None  # None: configured but not readable here
    source: str  # for messages: "repository 'shared' sign_key (env:DRKIT_SIGN_KEY)"

    def _mac(self, key: str, data: bytes) -> str:
        if self.key is None:
            raise ConfigError(
                f"{self.source} is not readable by user {_user()}: it is needed to read or write "
                f"backups and WAL (wal-push and wal-fetch run as the database's OS user and sign "
                f"and check every WAL file)"
            )
        message = b"drkit-signed-v1\0" + key.encode() + b"\0" + data
        return f"{SCHEME}:{hmac.new(self.key, message, hashlib.sha256).hexdigest()}\n"

    def sign(self, key: str, data: bytes) -> bytes:
        return self._mac(key, data).encode()

    def embed(self, key: str, data: bytes) -> bytes:
        """`data`'s first line (any signature it had dropped), then its signature."""
        line = payload(data)
        return line + b"\n" + self.sign(key, line)

    def check_embedded(self, key: str, raw: bytes) -> None:
        lines = raw.split(b"\n")
        self.check(key, lines[0], lines[1] if len(lines) > 1 and lines[1] else None)

    def check(self, key: str, data: bytes, signature: bytes | None) -> None:
        expected = self._mac(key, data)
        if signature is None:
            raise IntegrityError(f"{key} is not signed, and {self.source} requires signatures; refusing")
        if not hmac.compare_digest(signature.strip(), expected.strip().encode()):
            raise IntegrityError(
                f"{key} has a wrong signature (changed, or signed with another key); refusing"
            )


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


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
        if is_embedded_key(key):
            self.inner.put(key, self.signer.embed(key, data), overwrite=overwrite)
            return
        if is_signed_key(key):
            # The signature first: the object it signs is the commit point.
            self.inner.put(key + SIGNATURE_SUFFIX, self.signer.sign(key, data), overwrite=overwrite)
        self.inner.put(key, data, overwrite=overwrite)

    def get(self, key: str) -> bytes:
        data = self.inner.get(key)
        if is_embedded_key(key):
            self.signer.check_embedded(key, data)
        elif is_signed_key(key):
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
