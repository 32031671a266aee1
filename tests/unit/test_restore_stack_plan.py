"""The whole-stack restore is planned for every service before any is touched."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.adapters.repository.codec import Codec
from drkit.adapters.repository.fs import FsRepository
from drkit.domain.errors import OperationError
from drkit.domain.stack import PostgresPolicy, RepositorySpec, RuntimeSpec, Service, Stack
from drkit.engines.core.workspace import Workspace
from drkit.engines.stack.restore import plan_stack

T = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def workspace(tmp_path: Path) -> Workspace:
    services = {
        "postgres": Service(
            name="postgres",
            kind="postgres",
            runtime=RuntimeSpec(type="local", data_dir=str(tmp_path / "pg")),
            dsn="host=127.0.0.1 port=1 dbname=nchat",
            postgres=PostgresPolicy(),
        ),
        "redis": Service(
            name="redis",
            kind="redis",
            runtime=RuntimeSpec(type="local", data_dir=str(tmp_path / "redis")),
            url="redis://127.0.0.1:1/0",
        ),
    }
    repo = RepositorySpec(name="local", type="fs", path=str(tmp_path / "repo"))
    stack = Stack(
        name="s",
        services=services,
        repositories={"local": repo},
        primary_repository="local",
        state_dir=str(tmp_path / "state"),
    )
    return Workspace(stack=stack, repo=FsRepository(tmp_path / "repo"), codec=Codec())


def test_every_service_without_a_usable_backup_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(OperationError) as caught:
        plan_stack(workspace(tmp_path), target_time=T)
    message = caught.value.message
    assert "nothing was touched" in message
    assert "\n  postgres: " in message and "\n  redis: no backup of redis" in message
