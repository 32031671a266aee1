"""Off-site copies: `drkit sync` copies the primary repository's committed backups, WAL,
objects data, sets and journals to another repository, incrementally and resumably.

Order, so that a copy killed at any moment is never mistaken for more than it is:
per service (under its lock) first everything outside `backups/` (WAL with its `.sha256`
sidecars after the segments, objects data with the catalog after the packs and blobs),
then each committed backup: its files, each re-hashed at the destination, and its manifest
last (the commit point there too). Sets and journals follow. A backup whose manifest has
not arrived is an incomplete backup at the destination; the next run copies only what is
missing. Backups still being written at the source (no manifest, a lease) are not copied.

A destination with `sign_key` gets manifests and sets signed with its own key, each checked
first against the source's signature (the source must sign too: an unsigned or wrongly
signed one is never copied there), so `drkit verify --repo` accepts the copy. A destination
without one gets the source's signatures as they are, beside the unchanged manifests and sets.

A destination with `encryption:` gets age-encrypted data. A plain source file is encrypted
as stored (the zstd frame inside stays byte for byte the source's) under the same key, and
the backup gets a manifest of its own describing what is stored there (docs/offsite.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from drkit.adapters.repository import open_repository
from drkit.adapters.repository.codec import decrypt, encrypt, is_encrypted, sha256
from drkit.adapters.repository.port import Entry, Repository
from drkit.domain.backup import MANIFEST_NAME, Manifest, StoredFile
from drkit.domain.errors import ConfigError, DrkitError, IntegrityError, RepositoryError, UsageError
from drkit.domain.progress import SILENT, Meter, Progress, no_meter
from drkit.domain.stack import Encryption, RepositorySpec
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.chains import Catalog, broken_chains
from drkit.engines.core.layout import backup_dir, backups_prefix, journals_prefix, lock_name
from drkit.engines.core.set_refs import sets_prefix
from drkit.engines.core.signing import (
    SIGNATURE_SUFFIX,
    SigningRepository,
    is_embedded_key,
    is_signed_key,
    payload,
    with_signing,
)
from drkit.engines.core.workspace import Workspace
from drkit.engines.ops.offsite import prove
from drkit.infra import locks
from drkit.infra.hold import hold

SECOND = timedelta(seconds=1)
ENCRYPTABLE = ".zst"  # stored data; manifests, sets, journals and WAL sidecars stay plain JSON/text


@dataclass
class SyncReport:
    repository: str
    location: str
    encrypted: bool
    copied: int = 0  # files written
    skipped: int = 0  # files already there
    bytes: int = 0  # bytes written
    backups: list[str] = field(default_factory=list)  # backups committed there by this run
    not_copied: list[str] = field(default_factory=list)  # damaged at the source: "service/id: why"
    not_files: list[str] = field(default_factory=list)  # links, fifos at the source: never copied
    seconds: float = 0.0
    storage_class: str | None = None  # what S3 stores each object there as (None: its default)
    immutable: bool | None = None  # proven on a canary this run (None: no object_lock there)
    lock: dict[str, Any] | None = None  # the canary proof (docs/offsite.md)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Copy:
    """One run's copy to one repository."""

    ws: Workspace
    dst: Repository
    encryption: Encryption | None
    report: SyncReport
    signed: bool = False  # the destination signs (and checks) manifests and sets with its key
    meter: Meter = no_meter  # bytes written so far (domain/progress.py)

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.encryption.recipients if self.encryption else ()

    def transform(self, key: str, data: bytes) -> bytes:
        """The bytes to store at the destination for a source blob."""
        if self.recipients and key.endswith(ENCRYPTABLE) and not is_encrypted(data, key):
            return encrypt(data, self.recipients)
        return data

    def arrived(self, key: str, src: Entry, dst: Entry | None) -> bool:
        """Puts are atomic: a key that exists holds a whole write. Plain: the same size;
        encrypted: larger than the plain bytes. Not older than the source (journals change),
        to the second (S3 keeps whole seconds)."""
        if dst is None or dst.modified < src.modified - SECOND:
            return False
        if self.recipients and key.endswith(ENCRYPTABLE) and not key.endswith(".age"):
            return dst.size > src.size
        return dst.size == src.size

    def put(self, key: str, data: bytes) -> str:
        """Write, read back, re-hash: the SHA-256 of what is stored there."""
        self.dst.put(key, data)
        stored = self.dst.get(key)
        # A WAL sidecar carries its signature inside: a signed destination stores its own.
        resigned = is_embedded_key(key) and payload(stored) == payload(data)
        if stored != data and not resigned:
            raise RepositoryError(f"{key} reads back different from what was written to {self.dst.location}")
        self.report.copied += 1
        self.report.bytes += len(data)
        self.meter(self.report.bytes)
        return sha256(stored)

    def mirror(self, prefix: str, *, exclude: str | None = None) -> None:
        """Every blob under `prefix` (but `exclude`) that is not there yet; sidecars and
        catalogs after the data they describe."""
        there = {e.key: e for e in self.dst.entries(prefix)}
        for src in sorted(self.ws.repo.entries(prefix), key=_order):
            if exclude and src.key.startswith(exclude):
                continue
            if self.signed and is_signature(src.key):
                continue  # the destination signs with its own key as it stores the object
            unsigned = self.signed and is_signed_key(src.key) and src.key + SIGNATURE_SUFFIX not in there
            if self.arrived(src.key, src, there.get(src.key)) and not unsigned:
                self.report.skipped += 1
                continue
            try:
                data = self.ws.repo.get(src.key)  # a signed source checks the signature
            except FileNotFoundError:  # removed since it was listed (prune, a catalog compaction)
                continue
            except IntegrityError as exc:
                if is_embedded_key(src.key):  # a WAL hash not signed here: its segment cannot be replayed
                    self.report.not_copied.append(f"{src.key}: {exc.message}")
                    continue
                raise IntegrityError(f"{exc.message}: not copied to {self.dst.location}") from exc
            self.put(src.key, self.transform(src.key, data))


def is_signature(key: str) -> bool:
    return key.endswith(SIGNATURE_SUFFIX) and is_signed_key(key.removesuffix(SIGNATURE_SUFFIX))


def _order(entry: Entry) -> tuple[int, str]:
    last = entry.key.endswith(".sha256") or "/catalog/" in entry.key
    return (1 if last else 0, entry.key)


def targets(ws: Workspace, to: str | None) -> list[RepositorySpec]:
    stack = ws.stack
    if to is not None:
        if to not in stack.repositories:
            known = ", ".join(sorted(stack.repositories))
            raise UsageError(f"no repository {to!r} in {stack.source_path} (known: {known})")
        if to == stack.primary_repository:
            raise UsageError(f"{to!r} is the primary repository: sync copies from it to another")
        return [stack.repositories[to]]
    chosen = [r for n, r in sorted(stack.repositories.items()) if n != stack.primary_repository]
    if not chosen:
        raise UsageError(
            f"{stack.source_path} has one repository: add another (an off-site bucket) to sync to"
        )
    return chosen


def sync(ws: Workspace, to: str | None = None, *, progress: Progress = SILENT) -> list[SyncReport]:
    """Copy to `to`, or to every repository but the primary."""
    return [sync_to(ws, spec, progress=progress) for spec in targets(ws, to)]


def sync_to(ws: Workspace, spec: RepositorySpec, *, progress: Progress = SILENT) -> SyncReport:
    started = ws.clock.monotonic()
    dst = with_signing(open_repository(spec), spec)
    if isinstance(dst, SigningRepository):
        _require_signed_source(ws, dst, spec.name)
    report = SyncReport(spec.name, dst.location, spec.encryption is not None)
    run = _Copy(ws, dst, spec.encryption, report, signed=isinstance(dst, SigningRepository))
    stack = ws.stack.name
    for service in sorted(ws.stack.services):
        progress.step(f"sync {service} to {spec.name} ({dst.location}): WAL and data, then backups")
        run.meter = progress.meter(f"copied to {spec.name}")
        with locks.exclusive(ws.lock_dir, lock_name(service), "sync"):
            run.mirror(f"{stack}/{service}/", exclude=backups_prefix(stack, service))
            _copy_backups(run, service)
    progress.step(f"sync sets and journals to {spec.name}")
    run.mirror(sets_prefix(stack))
    run.mirror(journals_prefix(stack))
    # Links and special files are not blobs: never listed, so never copied; named here.
    report.not_files = [f"{s.key}: {s.detail}" for s in ws.repo.strays(f"{stack}/") if not s.kind.leftover]
    report.storage_class = spec.storage.storage_class
    if spec.storage.object_lock is not None:  # immutable only once the server proved it
        _prove_lock(ws, spec, report)
    report.seconds = ws.clock.monotonic() - started
    return report


def _prove_lock(ws: Workspace, spec: RepositorySpec, report: SyncReport) -> None:
    try:
        _name, proof = prove(ws, spec.name)
    except DrkitError as exc:
        report.immutable = False
        report.lock = {"verdict": "failed", "immutable": False, "detail": exc.message}
        return
    report.immutable = proof.immutable
    report.lock = proof.to_dict()


def _require_signed_source(ws: Workspace, dst: SigningRepository, name: str) -> None:
    """A signed destination takes only manifests and sets whose source signature checked out:
    the source must sign, and the destination's key must be readable here."""
    if dst.signer.key is None:
        raise ConfigError(f"{dst.signer.source} is not readable: sync signs what it copies there")
    if not isinstance(ws.repo, SigningRepository):
        primary = ws.stack.primary_repository
        raise ConfigError(
            f"repository {name!r} has a sign_key and the source repository {primary!r} has none: "
            f"its manifests and sets are unsigned, and sync copies nothing unchecked into a signed "
            f"repository; give {primary!r} a sign_key (then take new backups) or remove the one of {name!r}"
        )


def _copy_backups(run: _Copy, service: str) -> None:
    stack = run.ws.stack.name
    there = {m.backup_id for m in list_backups(run.dst, stack, service).complete}
    source = list_backups(run.ws.repo, stack, service)
    run.report.not_copied += [f"{service}/{d.backup_id}: {d.reason}" for d in source.damaged]
    # Chains go whole: an incremental whose chain is broken here is useless there; parents first.
    broken = broken_chains(Catalog.of(source.complete, ((d.backup_id, d.reason) for d in source.damaged)))
    run.report.not_copied += [f"{service}/{i}: {e.message}" for i, e in sorted(broken.items())]
    for manifest in sorted(source.complete, key=_parents_first):
        if manifest.backup_id in broken:
            continue
        if manifest.backup_id in there:  # committed there: its files and manifest
            run.report.skipped += len(manifest.files) + 1
            continue
        _copy_backup(run, manifest)
        run.report.backups.append(f"{service}/{manifest.backup_id}")


def _parents_first(m: Manifest) -> tuple[int, datetime, str]:
    return (len(m.postgres.chain) if m.postgres else 0, m.finished_at, m.backup_id)


def _copy_backup(run: _Copy, m: Manifest) -> None:
    directory = backup_dir(m.stack, m.service, m.backup_id)
    there = {e.key: e for e in run.dst.entries(f"{directory}/")}
    stored = tuple(_copy_file(run, m, f, there) for f in m.files)
    key = f"{directory}/{MANIFEST_NAME}"
    if stored == m.files:  # the same bytes: the source's own manifest (signature checked there)
        raw = run.ws.repo.get(key)
        if not run.signed:  # the source's signature, if any, goes with it (before it, as there)
            _copy_signature(run, key)
    else:
        raw = _copy_manifest(run, m, stored).to_json()
    run.put(key, raw)  # a signed destination signs it first with its own key


def _copy_signature(run: _Copy, key: str) -> None:
    try:
        signature = run.ws.repo.get(key + SIGNATURE_SUFFIX)
    except FileNotFoundError:
        return
    run.put(key + SIGNATURE_SUFFIX, signature)


def _copy_manifest(run: _Copy, m: Manifest, stored: tuple[StoredFile, ...]) -> Manifest:
    """What is stored at the destination: its hashes, `encrypted`, and the source's hashes
    of the plain (zstd) bytes inside each age file, to check them after decrypting."""
    copy = {
        "from": run.ws.stack.primary_repository,
        "stored_sha256": {f.name: f.sha256 for f in m.files},
        "stored_size": {f.name: f.size for f in m.files},
    }
    return replace(m, files=stored, encrypted=True, details={**m.details, "encrypted_copy": copy})


def _copy_file(run: _Copy, m: Manifest, f: StoredFile, there: dict[str, Entry]) -> StoredFile:
    key = f"{backup_dir(m.stack, m.service, m.backup_id)}/{f.name}"
    if key in there:
        kept = _already_there(run, key, f)
        if kept is not None:
            run.report.skipped += 1
            return kept
    data = run.ws.repo.get(key)
    if len(data) != f.size or sha256(data) != f.sha256:
        raise IntegrityError(
            f"{key} in {run.ws.repo.location} does not match its manifest: not copied",
            hint=f"drkit verify {m.backup_id}",
        )
    out = run.transform(key, data)
    digest = run.put(key, out)
    hold("sync-copying")  # tests: a kill here leaves a backup without its manifest there
    return replace(f, size=len(out), sha256=digest)


def _already_there(run: _Copy, key: str, f: StoredFile) -> StoredFile | None:
    """A file an interrupted run wrote: read it (no write) and check it against the source
    manifest: the same bytes, or (encrypted) age data that decrypts to them when the
    destination's identity is known here."""
    data = run.dst.get(key)
    if len(data) == f.size and sha256(data) == f.sha256:
        return f
    if not run.recipients or not is_encrypted(data, key):
        return None
    identity = run.encryption.identity if run.encryption else None
    if identity is not None and sha256(decrypt(data, identity, name=key)) != f.sha256:
        return None
    return replace(f, size=len(data), sha256=sha256(data))
