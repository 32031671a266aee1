"""Targets are planned, not attempted (engines/postgres/targets.py, branches.py): a restore
point's name is found among drkit's sets or in the archived WAL before anything is touched,
the base backup before it is chosen, and a target on a branch a later PITR abandoned is
replayed on the timeline that holds it. Real PostgreSQL, real WAL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drkit.adapters.postgres.client import connect
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived


def _json(box: SandboxHandle, *args: str) -> Any:
    result = run_drkit("--output", "json", *args, config=box.config_path)
    assert result.code == 0, result.stdout + result.stderr
    text = result.stdout
    return json.loads(text[min(i for i in (text.find("{"), text.find("[")) if i >= 0) :])


def _rows(dsn: str) -> list[int]:
    with connect(dsn) as conn:
        return [int(r[0]) for r in conn.execute("select id from target_probe order by id")]


def _base(box: SandboxHandle) -> str:
    return str(_json(box, "backup")[0]["backup_id"])


def test_a_name_is_found_or_refused_before_anything_is_written(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    box.psql("create table target_probe (id int primary key)")
    box.psql("insert into target_probe values (1)")
    first = _base(box)
    box.psql("insert into target_probe values (2)")
    box.psql("select pg_create_restore_point('manual point')")  # pg_create_restore_point by hand
    box.psql("insert into target_probe values (3)")
    the_set = _json(box, "backup", "--all")
    box.psql("insert into target_probe values (4)")
    later = _base(box)  # the newest backup, after both restore points: useless for them
    switch_and_wait_archived(box.dsn)
    assert later != first

    nowhere = restore_dir(box.dir, "nowhere", box.box.os_user)
    refused = run_drkit(
        "restore", "postgres", "--target-name", "no such point", "--to", str(nowhere), config=box.config_path
    )
    assert refused.code == 1, refused.stdout + refused.stderr
    assert "no restore point named 'no such point'" in refused.stderr
    assert not nowhere.exists(), "a refused restore wrote its target directory"

    for name, rows in (("manual point", [1, 2]), (the_set["restore_point"], [1, 2, 3])):
        dest = restore_dir(box.dir, f"named-{len(rows)}", box.box.os_user)
        out = _json(box, "restore", "postgres", "--target-name", name, "--to", str(dest), "--keep-running")
        try:
            assert out["backup_id"] == first  # the backup before the name, not the newest one
            assert _rows(query_dsn(out["port"])) == rows
        finally:
            stop_restored(dest, box.box.os_user)


def test_a_set_restore_after_a_later_pitr_replays_the_sets_branch(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    box.psql("create table target_probe (id int primary key)")
    _base(box)
    box.psql("insert into target_probe values (1)")
    before_two = str(box.psql("select clock_timestamp()::text"))
    box.psql("select pg_sleep(0.05)")
    box.psql("insert into target_probe values (2)")
    the_set = _json(box, "backup", "--all")  # restore point after rows 1 and 2, on timeline 1
    box.psql("insert into target_probe values (3)")
    switch_and_wait_archived(box.dsn)

    # A PITR to before row 2 (and so before the set's restore point) starts timeline 2.
    pitr = _json(box, "restore", "postgres", "--in-place", "--yes", "--target-time", before_two)
    assert pitr["timeline"] == 2 and _rows(box.dsn) == [1]
    box.psql("insert into target_probe values (4)")
    switch_and_wait_archived(box.dsn)

    # A set written before sets recorded their timeline: found from the WAL with pg_waldump.
    set_file = box.dir / "repo" / "sandbox" / "sets" / f"{the_set['set_id']}.json"
    recorded = json.loads(set_file.read_text())
    assert recorded.pop("restore_point_timeline") == 1
    set_file.write_text(json.dumps(recorded))

    dry = _json(box, "--dry-run", "restore", "--set", the_set["set_id"])
    (step,) = [s for s in dry["steps"] if s["service"] == "postgres"]
    assert "following timeline 1" in step["detail"]
    restored = run_drkit("restore", "--set", the_set["set_id"], "--yes", config=box.config_path)
    assert restored.code == 0, restored.stdout + restored.stderr
    assert _rows(box.dsn) == [1, 2]  # the set's rows, from timeline 1's branch
    data_dir = Path(box.stack.services["postgres"].runtime.data_dir or "")
    assert "recovery_target_timeline = '1'" in (data_dir / "postgresql.auto.conf").read_text()
