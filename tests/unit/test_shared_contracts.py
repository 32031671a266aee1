"""Contracts every engine relies on: wait_for retries only what it is told is "not ready
yet"; a manifest from a newer drkit is refused, not misread."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from drkit.domain.backup import MANIFEST_FORMAT, BackupKind, Manifest
from drkit.domain.errors import IntegrityError, OperationError, UnsupportedFormatError
from drkit.infra.wait import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_retries_the_errors_it_is_told_about() -> None:
    calls = []

    def probe() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise OperationError("connection refused")
        return True

    assert wait_for(probe, timeout=10, what="x", retry_on=(OperationError,), clock=FakeClock()) is True  # type: ignore[arg-type]
    assert len(calls) == 3


def test_wait_for_lets_any_other_exception_through_at_once() -> None:
    clock = FakeClock()
    calls = []

    def probe() -> bool:
        calls.append(1)
        raise KeyError("a bug, not a slow server")

    with pytest.raises(KeyError):
        wait_for(probe, timeout=10, what="x", retry_on=(OperationError,), clock=clock)  # type: ignore[arg-type]
    assert len(calls) == 1
    assert clock.now == 0.0


def test_wait_for_times_out_naming_the_last_error() -> None:
    def probe() -> None:
        raise OperationError("still starting")

    with pytest.raises(OperationError, match="timed out after 2s waiting for the server: still starting"):
        wait_for(probe, timeout=2, what="the server", retry_on=(OperationError,), clock=FakeClock())  # type: ignore[arg-type]


def test_fatal_subclasses_of_retried_errors_propagate() -> None:
    class Exited(OperationError):
        pass

    def probe() -> None:
        raise Exited("it exited")

    with pytest.raises(Exited):
        wait_for(probe, timeout=10, what="x", retry_on=(OperationError,), fatal=(Exited,), clock=FakeClock())  # type: ignore[arg-type]


def _manifest(**overrides: object) -> dict[str, object]:
    m = Manifest(
        backup_id="20261130T000000Z-rdb",
        stack="s",
        service="redis",
        kind=BackupKind.RDB,
        started_at=datetime(2026, 11, 30, tzinfo=UTC),
        finished_at=datetime(2026, 11, 30, 0, 1, tzinfo=UTC),
        files=(),
        tool_versions={},
    )
    data = json.loads(m.to_json())
    data.update(overrides)
    return data


def test_a_manifest_of_this_format_reads() -> None:
    assert Manifest.from_dict(_manifest()).format == MANIFEST_FORMAT


def test_a_manifest_from_a_newer_drkit_is_refused_with_a_message_saying_so() -> None:
    with pytest.raises(UnsupportedFormatError, match=r"has format 99, newer than this drkit reads"):
        Manifest.from_dict(_manifest(format=99))


def test_require_postgres_names_the_backup_instead_of_asserting() -> None:
    with pytest.raises(IntegrityError, match="20261130T000000Z-rdb is not a PostgreSQL base backup"):
        Manifest.from_dict(_manifest()).require_postgres()
