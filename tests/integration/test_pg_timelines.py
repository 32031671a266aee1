"""PITR across a timeline switch: after an in-place PITR (timeline 2), a later point on
timeline 2 is reachable from the base backup taken on timeline 1, without a new backup."""

from __future__ import annotations

import json

from drkit.adapters.postgres.client import connect
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import (
    query_dsn,
    restore_dir,
    stop_restored,
    switch_and_wait_archived,
)


def _json(handle: SandboxHandle, *args: str) -> dict:
    result = run_drkit("--output", "json", *args, config=handle.config_path)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout[result.stdout.index("{") :])


def _commit_then_mark(box: SandboxHandle, kept: int, dropped: int) -> str:
    """Commit row `kept`, note the time, then commit row `dropped` strictly later."""
    box.psql("insert into tl_probe values (%s)", (kept,))
    mark = str(box.psql("select clock_timestamp()::text"))
    box.psql("select pg_sleep(0.05)")
    box.psql("insert into tl_probe values (%s)", (dropped,))
    return mark


def test_pitr_to_a_time_after_an_in_place_restores_timeline_switch(
    private_sandbox: SandboxHandle,
) -> None:
    box = private_sandbox
    box.psql("create table tl_probe (id int primary key)")
    made = run_drkit("--output", "json", "backup", config=box.config_path)
    assert made.code == 0, made.stderr
    backup_id = made.json()[0]["backup_id"]
    first = _commit_then_mark(box, 1, 2)
    switch_and_wait_archived(box.dsn)

    in_place = _json(box, "restore", "postgres", "--in-place", "--yes", "--target-time", first)
    assert in_place["timeline"] == 2
    assert [r for (r,) in _rows(box.dsn)] == [1]

    second = _commit_then_mark(box, 3, 4)  # on timeline 2
    last = switch_and_wait_archived(box.dsn)
    assert last.startswith("00000002")
    wal = box.dir / "repo" / "sandbox" / "postgres" / "wal"
    assert any(p.name.startswith("00000002.history") for p in (wal / "00000002").iterdir())

    dest = restore_dir(box.dir, "timeline2", box.box.os_user)
    out = _json(box, "restore", "postgres", "--target-time", second, "--to", str(dest), "--keep-running")
    try:
        assert out["backup_id"] == backup_id  # the base backup of timeline 1: no new one was taken
        assert [r for (r,) in _rows(query_dsn(out["port"]))] == [1, 3]
        assert out["timeline"] == 3  # promoted off timeline 2
        assert "recovery_target_timeline = '2'" in (dest / "postgresql.auto.conf").read_text()
    finally:
        stop_restored(dest, box.box.os_user)

    verified = run_drkit("verify", backup_id, config=box.config_path)
    assert verified.code == 0, verified.stdout + verified.stderr
    assert "timeline 1 -> 2" in verified.stdout


def _rows(dsn: str) -> list[tuple[int]]:
    with connect(dsn) as conn:
        return [(int(r[0]),) for r in conn.execute("select id from tl_probe order by id")]
