"""Repository backends behind one small port; an explicit registry picks one by `type`."""

from __future__ import annotations

from drkit.adapters.repository.port import Repository
from drkit.domain.errors import ConfigError
from drkit.domain.stack import RepositorySpec


def open_repository(spec: RepositorySpec) -> Repository:
    """The backend for a repository spec. Backends are imported only when chosen."""
    if spec.type == "fs":
        from drkit.adapters.repository.fs import FsRepository

        if not spec.path:
            raise ConfigError(f"repository {spec.name!r}: type fs needs a path")
        return FsRepository(spec.path)
    if spec.type == "s3":
        try:
            from drkit.adapters.repository.s3 import S3Repository
        except ImportError as exc:  # pragma: no cover - until the S3 backend lands
            raise ConfigError(f"repository {spec.name!r}: the s3 backend is not built yet") from exc
        return S3Repository(spec)
    raise ConfigError(f"repository {spec.name!r}: unknown type {spec.type!r} (known: fs, s3)")
