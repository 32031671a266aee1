"""Drills on the sandbox: every scenario of the monthly rotation on isolated copies restored
from the live backups, failures injected for real, RTO and RPO measured; an impossible
target is missed and says so (exit 4); the live stack and its archive are never touched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.integration

EVERYTHING = {"services": ("postgres", "redis", "s3", "hasura", "meilisearch")}


def live_timelines(box: SandboxHandle) -> set[str]:
    wal = box.dir / "repo" / "sandbox" / "postgres" / "wal"
    return {p.name for p in wal.iterdir()} if wal.exists() else set()


@pytest.mark.parametrize("private_sandbox", [EVERYTHING], indirect=True)
def test_every_drill_of_the_rotation_passes_with_its_measures_and_report(
    private_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    box = private_sandbox
    assert run_drkit("backup", "--all", config=box.config_path).code == 0
    messages = box.psql("select count(*) from nchat_messages")
    timelines = live_timelines(box)

    result = run_drkit(
        "--output", "json", "drill", "--all", "--report", str(tmp_path), config=box.config_path, timeout=1200
    )
    assert result.code == 0, result.stderr
    journals = result.json()
    assert [j["scenario"] for j in journals] == ["db-corruption", "service-redis", "data-loss", "full-outage"]
    for journal in journals:
        assert journal["verdict"] == "passed", (journal["scenario"], journal["error"])
        assert journal["failure_at"] is not None
        assert journal["steps"][-1]["name"] == "verify-state"
        assert journal["steps"][-1]["status"] == "succeeded"
        assert journal["measures"], journal["scenario"]
        for measure in journal["measures"]:
            assert measure["rto_seconds"] is not None and measure["rto_seconds"] >= 0
            assert measure["rto_met"] in (True, None)
        html = (tmp_path / f"{journal['run_id']}.html").read_text()
        assert "PASSED" in html.upper()
    data_loss = next(j for j in journals if j["scenario"] == "data-loss")
    pg = next(m for m in data_loss["measures"] if m["service"] == "postgres")
    target = data_loss["parameters"]["target_time"]
    gap = (_time(data_loss["failure_at"]) - _time(target)).total_seconds()
    assert abs(pg["rpo_seconds"] - gap) < 1.0  # RPO = the failure minus the newest data recovered (T)

    # The live stack was never touched: same data, no timeline of a drill in its archive.
    assert box.psql("select count(*) from nchat_messages") == messages
    assert live_timelines(box) == timelines
    listed = run_drkit("--output", "json", "drills", "list", config=box.config_path)
    assert listed.code == 0
    assert all(j["run_id"] in json.dumps(listed.json()) for j in journals)


@pytest.mark.parametrize("private_sandbox", [{"services": ("postgres",), "pg_major": 18}], indirect=True)
def test_an_impossible_target_is_missed_after_a_complete_recovery_and_the_report_says_so(
    private_sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """On PostgreSQL 18: the isolated copy runs the live stack's major (its runtime's bin_dir),
    not the newest Debian server (15 here), which would refuse the restored data directory."""
    box = private_sandbox
    config = yaml.safe_load(box.config_path.read_text())
    config["services"]["postgres"]["rto"] = "1s"
    box.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert run_drkit("backup", "--all", config=box.config_path).code == 0

    result = run_drkit(
        "--output",
        "json",
        "drill",
        "db-corruption",
        "--report",
        str(tmp_path),
        config=box.config_path,
        timeout=600,
    )
    assert result.code == 4, result.stderr
    (journal,) = result.json()
    assert journal["verdict"] == "missed-target"
    assert all(s["status"] == "succeeded" for s in journal["steps"] if s["name"] != "emergency-dump")
    pg = next(m for m in journal["measures"] if m["service"] == "postgres")
    assert pg["rto_met"] is False and pg["rto_target"] == 1.0
    html = (tmp_path / f"{journal['run_id']}.html").read_text()
    assert "MISSED" in html
    assert re.search(r'class="[^"]*missed', html)


def _time(text: str):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.fromisoformat(text)
