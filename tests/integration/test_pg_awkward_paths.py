"""archive_command and restore_command survive a sandbox whose every path holds spaces,
single quotes and `%p`: WAL archived by the server and fetched back by a restore. (Double
quotes and `$` are left out: pg_ctl itself runs the server through a double-quoting shell
line and cannot start one there; the unit tests cover them for drkit's commands.)"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from drkit.adapters.postgres.client import connect
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle, destroy_sandbox, make_sandbox
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived


@pytest.fixture
def awkward() -> Iterator[SandboxHandle]:
    handle = make_sandbox("drkit it's %p %f-", services=("postgres",))
    yield handle
    destroy_sandbox(handle)


def test_wal_is_archived_and_fetched_through_paths_with_spaces_and_quotes(awkward: SandboxHandle) -> None:
    box = awkward
    assert " " in str(box.config_path) and "'" in str(box.config_path) and "%p" in str(box.config_path)
    made = run_drkit("--output", "json", "backup", config=box.config_path)
    assert made.code == 0, made.stderr
    box.psql("create table awkward_probe as select g from generate_series(1, 500) g")
    switch_and_wait_archived(box.dsn)  # archive_command ran wal-push with the awkward config path
    dest = restore_dir(box.dir, "it's restored %f", box.box.os_user)
    result = run_drkit(
        "--output", "json", "restore", "postgres", "--to", str(dest), "--keep-running", config=box.config_path
    )
    assert result.code == 0, result.stderr
    try:
        port = json.loads(result.stdout[result.stdout.index("{") :])["port"]
        with connect(query_dsn(port)) as conn:
            row = conn.execute("select count(*) from awkward_probe").fetchone()
        assert row is not None and row[0] == 500  # replayed from WAL that restore_command fetched
    finally:
        stop_restored(dest, box.box.os_user)
