"""A target time typed without a zone is the operator's local time (issue 18, item 3): in
TZ=Europe/Berlin, a log line's wall-clock time restores the Berlin moment, not an hour later."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from drkit.adapters.postgres.client import connect
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import query_dsn, restore_dir, stop_restored, switch_and_wait_archived

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_zone_less_target_time_in_berlin_restores_the_berlin_moment(sandbox: SandboxHandle) -> None:
    sandbox.psql("create table tz_probe (id int primary key)")
    result = run_drkit("--output", "json", "backup", "postgres", config=sandbox.config_path)
    assert result.code == 0, result.stderr
    sandbox.psql("insert into tz_probe values (1)")
    target = datetime.fromisoformat(sandbox.psql("select to_json(clock_timestamp())#>>'{}'"))
    sandbox.psql("select pg_sleep(0.05)")  # the second commit is strictly later than the target
    sandbox.psql("insert into tz_probe values (2)")
    switch_and_wait_archived(sandbox.dsn)

    wall_clock = target.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S.%f")  # what a Berlin log shows
    dest = restore_dir(sandbox.dir, "tz-berlin", sandbox.box.os_user)
    result = run_drkit(
        "--output",
        "json",
        "restore",
        "postgres",
        "--target-time",
        wall_clock,
        "--to",
        str(dest),
        "--keep-running",
        config=sandbox.config_path,
        env={"TZ": "Europe/Berlin"},
    )
    assert result.code == 0, result.stderr
    assert "read in the local zone, Europe/Berlin" in result.stderr
    assert f"{target.astimezone(BERLIN):%Y-%m-%d %H:%M:%S} CE" in result.stderr  # CET or CEST
    out = json.loads(result.stdout)
    try:
        with connect(query_dsn(out["port"])) as conn:
            ids = [r[0] for r in conn.execute("select id from tz_probe order by id")]
        assert ids == [1]
    finally:
        stop_restored(dest, sandbox.box.os_user, sandbox.bin_dir)
