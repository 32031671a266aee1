"""One meaning of `rpo` for every service, and `drkit check` saying when one cannot hold."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from drkit.config.loader import load_stack
from drkit.domain.checks import Status
from drkit.engines.core.workspace import open_workspace
from drkit.engines.ops.objectives import check_objectives

BASE = """\
version: 1
stack: demo
repositories:
  local: {{type: fs, path: ./repo}}
services:
  postgres: {{kind: postgres, dsn: host=127.0.0.1 dbname=app, rpo: {pg_rpo}}}
  hasura: {{kind: hasura, url: "http://127.0.0.1:8080", depends_on: [postgres]{hasura}}}
  auth: {{kind: auth, url: "http://127.0.0.1:4000", depends_on: [postgres, hasura]}}
  redis: {{kind: redis, url: "redis://127.0.0.1:6379/0", rpo: 15m}}
{schedule}"""
DAILY = """\
schedule:
  nightly: {cron: "0 2 * * *", job: backup}
  prune: {cron: "30 3 * * *", job: prune}
"""
NO_BACKUPS = """\
schedule:
  prune: {cron: "30 3 * * *", job: prune}
"""


def results(
    tmp_path: Path, *, pg_rpo: str = "5m", hasura: str = "", schedule: str = ""
) -> dict[str, tuple[Status, str]]:
    path = tmp_path / "stack.yaml"
    path.write_text(BASE.format(pg_rpo=pg_rpo, hasura=hasura, schedule=schedule))
    found = check_objectives(open_workspace(load_stack(path)))
    return {r.name.split(":")[0]: (r.status, r.detail) for r in found}


def test_services_keeping_their_data_in_postgres_inherit_its_rpo(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(BASE.format(pg_rpo="5m", hasura="", schedule=""))
    stack = load_stack(path)
    for name in ("hasura", "auth"):
        assert (stack.services[name].rpo, stack.services[name].rpo_from) == (timedelta(minutes=5), "postgres")
    assert stack.services["redis"].rpo_from is None
    found = results(tmp_path)
    assert found["hasura"] == (Status.OK, "5m00s, postgres's (its data lives there; no rpo of its own)")
    assert found["postgres"][0] is Status.OK and found["redis"][0] is Status.OK  # the default schedule


def test_an_rpo_below_postgres_for_hasura_is_a_warning_naming_the_fix(tmp_path: Path) -> None:
    status, detail = results(tmp_path, hasura=", rpo: 0s")["hasura"]
    assert status is Status.WARNING
    assert "rpo 0s is below postgres's 5m00s" in detail and "Remove its `rpo`" in detail


@pytest.mark.parametrize("rpo", ["0s"])
def test_an_rpo_of_zero_is_below_what_wal_capture_delivers(tmp_path: Path, rpo: str) -> None:
    status, detail = results(tmp_path, pg_rpo=rpo)["postgres"]
    assert status is Status.WARNING
    assert "below what WAL capture can deliver: WAL archiving loses up to archive_timeout" in detail


def test_an_rpo_shorter_than_the_gap_between_scheduled_backups_is_a_warning(tmp_path: Path) -> None:
    status, detail = results(tmp_path, schedule=DAILY)["redis"]
    assert status is Status.WARNING
    assert "rpo 15m00s is shorter than the 24h00m between two scheduled backups of redis" in detail
    status, detail = results(tmp_path, schedule=NO_BACKUPS)["redis"]
    assert status is Status.WARNING and "no scheduled job backs redis up" in detail
    status, detail = results(tmp_path)["redis"]  # the defaults back it up every 10 minutes
    assert (status, detail) == (Status.OK, "15m00s; the schedule backs it up at least every 10m00s")
