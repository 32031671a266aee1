"""The in-place objects restore's refusals (engines/objects/restore_volume.py; its moves are
infra/aside.py's, tests/unit/test_aside.py); the whole restore runs against a real Docker
engine in tests/integration/test_docker_objects.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.core.types import RestoreOptions
from drkit.engines.objects.restore_volume import (
    VolumeTarget,
    _failed_after_move,
    check_backup,
    volume_target,
)


def test_in_place_needs_a_container() -> None:
    service = Service("minio", "s3", RuntimeSpec(type="local"), url="http://127.0.0.1:9000")
    with pytest.raises(UsageError, match="runtime.type compose"):
        volume_target(service)


def test_a_failure_after_the_move_says_where_the_old_data_is() -> None:
    service = Service("minio", "s3", RuntimeSpec(type="compose", container="shop_minio"))
    target = VolumeTarget("shop_minio", "shop_minio_data", "/data", Path("/var/lib/docker/volumes/v/_data"))
    aside = target.host_path / "drkit-before-restore-20261130T080000Z"
    error = _failed_after_move(service, target, aside, OperationError("S3 did not answer"))
    assert str(aside) in error.message and "S3 did not answer" in error.message
    assert "/data/drkit-before-restore-20261130T080000Z" in error.message
    assert error.hint is not None and "docker stop shop_minio" in error.hint


def test_in_place_refuses_when_only_some_buckets_are_backed_up() -> None:
    service = Service(
        "minio", "s3", RuntimeSpec(type="compose", container="shop_minio"), url="http://127.0.0.1:9000",
        buckets=("uploads",),
    )  # fmt: skip
    manifest = SimpleNamespace(backup_id="20261130T080000Z-objects", details={"buckets": {"uploads": {}}})
    with pytest.raises(UsageError, match="only the buckets uploads are backed up"):
        check_backup(None, service, manifest, RestoreOptions())  # type: ignore[arg-type]
