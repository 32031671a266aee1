"""`drkit backups list` shows, per service, the moments it can restore to in wall-clock time
("restorable from ... to ...", as pgbackrest info does), with --since, --latest N and --kind
(issue 18, item 7). A WAL gap moves the start of PostgreSQL's window past it."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drkit.domain.wal import Lsn, Segment
from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle
from tests.integration.pg_helpers import switch_and_wait_archived

BERLIN = ZoneInfo("Europe/Berlin")


def backup(box: SandboxHandle, service: str) -> dict:
    result = run_drkit("--output", "json", "backup", service, config=box.config_path)
    assert result.code == 0, result.stderr
    return dict(result.json()[0])


def listing(box: SandboxHandle, *args: str) -> dict:
    result = run_drkit("--output", "json", "backups", "list", *args, config=box.config_path)
    assert result.code == 0, result.stderr
    return dict(result.json())


def windows(box: SandboxHandle) -> dict[str, dict]:
    return {w["service"]: w for w in listing(box)["windows"]}


@pytest.mark.parametrize("private_sandbox", [{"services": ("postgres", "redis")}], indirect=True)
def test_windows_filters_and_a_wal_gap(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    first = backup(box, "postgres")
    box.psql("create table window_probe (id int)")
    switch_and_wait_archived(box.dsn)
    r1, r2 = backup(box, "redis"), backup(box, "redis")

    found = windows(box)
    pg = found["postgres"]
    assert pg["continuous"] is True
    assert datetime.fromisoformat(pg["earliest"]) == datetime.fromisoformat(first["finished_at"])
    assert datetime.fromisoformat(pg["latest"]) > datetime.fromisoformat(first["finished_at"])
    redis = found["redis"]
    assert (redis["continuous"], redis["points"]) == (False, 2)
    assert redis["earliest"] == r1["finished_at"] and redis["latest"] == r2["finished_at"]

    # In the host's zone, as an operator reads it.
    text = run_drkit("backups", "list", config=box.config_path, env={"TZ": "Europe/Berlin"})
    assert text.code == 0, text.stderr
    start = datetime.fromisoformat(first["finished_at"]).astimezone(BERLIN)
    assert "recovery windows (times in Europe/Berlin)" in text.stdout
    # (milliseconds when the window's two ends fall in one second)
    assert re.search(rf"from {start:%Y-%m-%d %H:%M:%S}(\.\d{{3}})? to ", text.stdout), text.stdout

    only = listing(box, "--kind", "rdb", "--latest", "1")["backups"]
    assert [b["backup_id"] for b in only] == [r2["backup_id"]]
    since = listing(box, "--since", r2["finished_at"])["backups"]
    assert [b["backup_id"] for b in since] == [r2["backup_id"]]
    bad = run_drkit("backups", "list", "--kind", "tape", config=box.config_path)
    assert bad.code == 2 and "--kind 'tape': use one of base, logical" in bad.stderr

    # A WAL segment the first base backup needs later is lost: its PITR stops there, and the
    # window starts at the next base backup that has an unbroken WAL after it.
    stop = Segment.containing(
        Lsn.parse(first["postgres"]["stop_lsn"]), 1, first["postgres"]["wal_segment_size"]
    )
    lost = stop.next()
    wal_dir = Path(box.stack.repository.path or "") / box.stack.name / "postgres" / "wal" / "00000001"
    for path in wal_dir.glob(f"{lost.name}*"):
        path.unlink()
    box.psql("insert into window_probe values (1)")
    switch_and_wait_archived(box.dsn)
    second = backup(box, "postgres")
    switch_and_wait_archived(box.dsn)
    pg = windows(box)["postgres"]
    assert datetime.fromisoformat(pg["earliest"]) == datetime.fromisoformat(second["finished_at"])
    assert "1 older base backup(s) stop at a WAL gap" in pg["detail"]
