"""Drills on the sandbox: an impossible target is missed and says so (exit 4).

Every scenario of the monthly rotation, on isolated copies restored from the live backups,
failures injected for real, RTO and RPO measured, the live stack and its archive never
touched: README's `drkit drill --all` line, checked by test_readme_block.check_drills."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.integration


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
