"""What every engine works with: the stack, its repository, the codec, the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drkit.adapters.repository import open_repository
from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.port import Repository
from drkit.domain.errors import UsageError
from drkit.domain.stack import Service, Stack
from drkit.engines.core.lease import LeaseKeeper
from drkit.engines.core.signing import with_signing
from drkit.infra.clock import Clock, SystemClock


@dataclass(frozen=True)
class Workspace:
    stack: Stack
    repo: Repository
    codec: Codec
    clock: Clock = field(default_factory=SystemClock)
    # Per service, while backup_lock() is held: the run's lease on the backup it writes.
    leases: dict[str, LeaseKeeper] = field(default_factory=dict, compare=False, repr=False)

    @property
    def lock_dir(self) -> Path:
        return Path(self.stack.state_dir) / "locks"

    @property
    def state_dir(self) -> Path:
        return Path(self.stack.state_dir)

    def postgres(self, name: str | None = None) -> Service:
        """The PostgreSQL service (by name, or the only one)."""
        if name is not None:
            service = self.stack.service(name)
            if service.kind != "postgres":
                raise UsageError(f"service {name!r} is a {service.kind}, not postgres")
            return service
        candidates = self.stack.services_of_kind("postgres")
        if len(candidates) != 1:
            raise UsageError("name the PostgreSQL service: the stack has " + str(len(candidates)))
        return candidates[0]


def open_workspace(
    stack: Stack, *, clock: Clock | None = None, level: int = 1, repository: str | None = None
) -> Workspace:
    """The stack on its primary repository, or on another one (`repository`: a copy's name)."""
    if repository is not None and repository not in stack.repositories:
        known = ", ".join(sorted(stack.repositories))
        raise UsageError(f"no repository {repository!r} in {stack.source_path} (known: {known})")
    spec = stack.repositories[repository or stack.primary_repository]
    enc = spec.encryption or stack.encryption
    codec = Codec(
        level=level,
        recipients=enc.recipients if enc else (),
        identity=enc.identity if enc else None,
    )
    repo = with_signing(open_repository(spec), spec)
    return Workspace(stack, repo, codec, clock or SystemClock())
