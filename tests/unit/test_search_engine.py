"""Where the MeiliSearch engine looks for the server's files, and what a rebuild sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from drkit.domain.errors import UsageError
from drkit.domain.stack import RuntimeSpec, Service
from drkit.engines.search.rebuild import _jsonable, source_for
from drkit.engines.search.server import server_paths


def meili(command: tuple[str, ...] = (), data_dir: str | None = "/srv/meili") -> Service:
    return Service("search", "meilisearch", RuntimeSpec(type="local", command=command, data_dir=data_dir))


def test_defaults_are_meilisearchs_relative_to_its_working_directory() -> None:
    paths = server_paths(meili(("meilisearch",)))
    assert paths.db_path == Path("/srv/meili/data.ms")
    assert paths.artifact("dump", "20260101-000000000") == Path("/srv/meili/dumps/20260101-000000000.dump")
    assert paths.artifact("snapshot") == Path("/srv/meili/snapshots/data.ms.snapshot")


def test_flags_in_the_command_win_in_both_spellings() -> None:
    command = (
        "meilisearch",
        "--db-path",
        "/var/lib/ms/db.ms",
        "--dump-dir=/backups/dumps",
        "--snapshot-dir",
        "snaps",
    )
    paths = server_paths(meili(command))
    assert paths.db_path == Path("/var/lib/ms/db.ms")
    assert paths.dump_dir == Path("/backups/dumps")
    assert paths.snapshot_dir == Path("/srv/meili/snaps")
    assert paths.artifact("snapshot") == Path("/srv/meili/snaps/db.ms.snapshot")


def test_relative_paths_without_a_data_dir_are_a_config_error() -> None:
    with pytest.raises(UsageError, match="set runtime.data_dir"):
        server_paths(meili(("meilisearch",), data_dir=None))


def test_rebuild_sources_and_json_values() -> None:
    assert source_for("messages", None, None).primary_key == "id"
    assert source_for("docs", "select id, body from docs", "doc_id").primary_key == "doc_id"
    with pytest.raises(UsageError, match="no query known for index 'docs'"):
        source_for("docs", None, None)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.UUID(int=7)
    assert [_jsonable(v) for v in (ident, when, Decimal("1.5"), b"\x01", 3)] == [
        str(ident),
        "2026-01-02T03:04:05+00:00",
        1.5,
        "01",
        3,
    ]
