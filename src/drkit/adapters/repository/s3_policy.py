"""The storage policy of an S3 repository, applied and checked (docs/offsite.md): the bucket's
setup, the Object Lock proof on a canary, and restores from the archive tier ahead of a
restore. Keys here are the repository's (relative to its prefix)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from drkit.adapters.repository.s3 import S3Repository
from drkit.adapters.s3.archive import Thaw, ThawReport, head_state
from drkit.adapters.s3.bucket import SetupStep, create_locked_bucket, setup_bucket
from drkit.adapters.s3.client import make_client, s3_errors
from drkit.adapters.s3.lock import LockProof, canary_key, prove
from drkit.adapters.s3.tiering import put_args
from drkit.domain.errors import ConfigError, RepositoryError


def setup(repo: S3Repository, *, dry_run: bool, create_bucket: bool = False) -> list[SetupStep]:
    steps: list[SetupStep] = []
    if create_bucket:
        if dry_run:
            steps.append(SetupStep("bucket", "would-apply", f"would create {repo.bucket} with Object Lock"))
            return steps
        steps.append(create_locked_bucket(repo.client, repo.bucket))
    with s3_errors(repo.endpoint, f"configuring bucket {repo.bucket}", RepositoryError):
        steps += setup_bucket(repo.client, repo.bucket, repo.prefix, repo.storage, dry_run=dry_run)
    return steps


def prove_lock(repo: S3Repository, now: datetime) -> LockProof:
    """The canary proof with `object_lock.prove_with` when given, else the repository's
    own credentials."""
    lock = repo.storage.object_lock
    if lock is None:
        raise ConfigError(f"repository {repo.spec.name!r} has no object_lock")
    endpoint = repo.endpoint
    client = repo.client
    if lock.prove_with is not None:
        access, secret = lock.prove_with
        if not access or not secret:
            raise ConfigError(f"repository {repo.spec.name!r}: object_lock.prove_with is not readable here")
        endpoint = replace(endpoint, access_key=access, secret_key=secret)
        client = make_client(endpoint)
    extra = put_args(repo.storage, canary_key(repo.prefix, now))
    with s3_errors(endpoint, f"proving Object Lock on a canary in {repo.location}", RepositoryError):
        return prove(client, repo.bucket, repo.prefix, lock, now, extra)


def full_key(repo: S3Repository, key: str) -> str:
    return "/".join(p for p in (repo.prefix, key) if p)


def archived(repo: S3Repository, keys: list[str]) -> list[str]:
    """Of `keys`, those in an archive tier and not readable yet."""
    out = []
    with s3_errors(repo.endpoint, f"reading storage classes in {repo.location}", RepositoryError):
        for key in keys:
            if not head_state(repo.client, repo.bucket, full_key(repo, key)).readable:
                out.append(key)
    return out


def thaw(repo: S3Repository, keys: list[str], *, wait: bool) -> ThawReport:
    """Request the restore of every archived one of `keys` and (unless `wait` is False) wait
    until all are readable."""
    runner = Thaw(
        repo.client,
        repo.bucket,
        repo.endpoint,
        repo.storage.archive_restore,
        clock=repo.clock,
        notice=repo.notice,
        where=repo.location,
    )
    return runner.run([full_key(repo, k) for k in keys], wait=wait)
