"""The off-site repository's storage policy at work (docs/offsite.md):

- `setup`: the bucket's versioning, Object Lock default retention and lifecycle rules, once,
  with an administrator's credentials;
- `prove_lock`: the canary proof that the server enforces Object Lock; its outcome is kept
  in the state directory (`offsite/<repository>-lock.json`) for `drkit status`;
- `retrieve`: restore requests for what a restore of some backups will read from the
  archive tier (their files; for PostgreSQL the WAL from each base backup on), all at once,
  and a wait until they are readable, with the time shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from drkit.adapters.repository import open_repository
from drkit.adapters.repository.s3 import S3Repository
from drkit.adapters.repository.s3_policy import archived, prove_lock, setup, thaw
from drkit.adapters.s3.archive import ThawReport
from drkit.adapters.s3.bucket import SetupStep
from drkit.adapters.s3.lock import LockProof, LockVerdict
from drkit.domain.backup import Manifest
from drkit.domain.errors import DrkitError, UsageError
from drkit.domain.stack import RepositorySpec
from drkit.domain.wal import SEGMENT_RE, Lsn, Segment
from drkit.engines.core.catalog import list_backups
from drkit.engines.core.layout import backup_dir, wal_prefix
from drkit.engines.core.workspace import Workspace
from drkit.infra.atomic import write_atomic

PROOF_VALID = timedelta(days=2)  # a recorded proof older than this no longer counts


def s3_repository(ws: Workspace, name: str | None) -> tuple[RepositorySpec, S3Repository]:
    """The S3 repository `name` (default: the only non-primary S3 one)."""
    stack = ws.stack
    if name is None:
        s3 = [n for n, r in sorted(stack.repositories.items()) if r.type == "s3"]
        others = [n for n in s3 if n != stack.primary_repository] or s3
        if len(others) != 1:
            raise UsageError(
                f"name the repository (--repo): {stack.source_path} has "
                f"{len(others) or 'no'} S3 repositor{'y' if len(others) == 1 else 'ies'}"
            )
        name = others[0]
    if name not in stack.repositories:
        known = ", ".join(sorted(stack.repositories))
        raise UsageError(f"no repository {name!r} in {stack.source_path} (known: {known})")
    spec = stack.repositories[name]
    if spec.type != "s3":
        raise UsageError(
            f"repository {name!r} is of type {spec.type}: storage classes and Object Lock are S3's"
        )
    repo = ws.repo if name == stack.primary_repository and isinstance(ws.repo, S3Repository) else None
    return spec, repo or _open(spec)


def _open(spec: RepositorySpec) -> S3Repository:
    repo = open_repository(spec)
    if not isinstance(repo, S3Repository):  # pragma: no cover - type s3 opens an S3Repository
        raise UsageError(f"repository {spec.name!r} is not an S3 repository")
    return repo


def setup_repository(
    ws: Workspace,
    name: str | None,
    *,
    dry_run: bool,
    create_bucket: bool,
    credentials: tuple[str, str] | None = None,
) -> list[SetupStep]:
    """`credentials`: the bucket admin's (access key, secret key) for this run, instead of
    the repository's own (a writer's, which should not be allowed to configure the bucket)."""
    spec, repo = s3_repository(ws, name)
    if credentials is not None:
        repo = _open(replace(spec, access_key=credentials[0], secret_key=credentials[1]))
    return setup(repo, dry_run=dry_run, create_bucket=create_bucket)


# --- Object Lock --------------------------------------------------------------------------


def proof_path(ws: Workspace, name: str) -> Path:
    return ws.state_dir / "offsite" / f"{name}-lock.json"


def prove(ws: Workspace, name: str | None) -> tuple[str, LockProof]:
    """Prove Object Lock on the repository's canary and keep the outcome."""
    spec, repo = s3_repository(ws, name)
    if spec.storage.object_lock is None:
        raise UsageError(f"repository {spec.name!r} has no object_lock in {ws.stack.source_path}")
    proof = prove_lock(repo, ws.clock.now())
    record_proof(ws, spec.name, proof)
    return spec.name, proof


def record_proof(ws: Workspace, name: str, proof: LockProof) -> None:
    data = {**proof.to_dict(), "at": ws.clock.now().isoformat()}
    try:
        write_atomic(proof_path(ws, name), json.dumps(data).encode(), mode=0o600)
    except OSError:  # the proof's outcome stands; status shows it as not proven
        return


def proven_immutable(ws: Workspace, name: str) -> bool:
    """The repository's last recorded proof said `enforced`, and is recent."""
    try:
        data = json.loads(proof_path(ws, name).read_text())
        at = datetime.fromisoformat(str(data["at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return data.get("verdict") == LockVerdict.ENFORCED.value and ws.clock.now() - at < PROOF_VALID


# --- the archive tier -----------------------------------------------------------------------


@dataclass
class RetrieveReport:
    repository: str
    location: str
    backups: list[str] = field(default_factory=list)
    objects: int = 0  # objects the restore of those backups reads
    archived: int = 0  # of them, in an archive tier and not readable
    thaw: ThawReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "thaw": self.thaw.to_dict() if self.thaw else None}


def retrieve(
    ws: Workspace, name: str | None, backup_ids: list[str], *, service: str | None, wait: bool, dry_run: bool
) -> RetrieveReport:
    """Make readable what restoring `backup_ids` (default: each service's newest backup
    there) reads from the repository `name`."""
    spec, repo = s3_repository(ws, name)
    chosen = _chosen(ws, repo, backup_ids, service)
    keys: list[str] = []
    for m in chosen:
        keys += [f"{backup_dir(m.stack, m.service, m.backup_id)}/{f.name}" for f in m.files]
        keys += _wal_after(repo, m)
    report = RetrieveReport(spec.name, repo.location, [f"{m.service}/{m.backup_id}" for m in chosen])
    report.objects = len(keys)
    pending = archived(repo, keys)
    report.archived = len(pending)
    if pending and not dry_run:
        report.thaw = thaw(repo, pending, wait=wait)
    return report


def _chosen(ws: Workspace, repo: S3Repository, backup_ids: list[str], service: str | None) -> list[Manifest]:
    stack = ws.stack
    services = [service] if service else sorted(stack.services)
    unknown = [s for s in services if s not in stack.services]
    if unknown:
        raise UsageError(f"no service {unknown[0]!r} in {stack.source_path}")
    found = {s: list_backups(repo, stack.name, s).complete for s in services}
    if not backup_ids:
        return [max(ms, key=lambda m: m.backup_id) for ms in found.values() if ms]
    by_id = {m.backup_id: m for ms in found.values() for m in ms}
    missing = [b for b in backup_ids if b not in by_id]
    if missing:
        raise UsageError(f"no backup {missing[0]} in {repo.location}", hint="drkit backups list --repo NAME")
    return [by_id[b] for b in backup_ids]


def _wal_after(repo: S3Repository, m: Manifest) -> list[str]:
    """A base backup's WAL from its start segment on (what PITR from it may read)."""
    if m.postgres is None:
        return []
    size = m.postgres.wal_segment_size
    start = Segment.containing(Lsn.parse(m.postgres.start_lsn), m.postgres.timeline, size)
    out = []
    for entry in repo.entries(wal_prefix(m.stack, m.service)):
        name = entry.key.rsplit("/", 1)[-1].split(".", 1)[0]
        if SEGMENT_RE.match(name) and Segment.parse(name, size).number >= start.number:
            out.append(entry.key)
    return out


def lock_summary(spec: RepositorySpec, proof: LockProof | None, error: DrkitError | None) -> str:
    """One line for `drkit sync`: whether what it copied there is immutable, and why."""
    if spec.storage.object_lock is None:
        return "not immutable (no object_lock configured)"
    if error is not None:
        return f"NOT proven immutable: the canary proof failed: {error.message}"
    if proof is None:  # pragma: no cover - one of the two is given
        return "not proven"
    if proof.immutable:
        return f"immutable (proven on a canary): {proof.detail}"
    return f"NOT immutable ({proof.verdict.value}): {proof.detail}"
