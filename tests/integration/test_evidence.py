"""Incident evidence is kept and findable: the emergency dump a db-corruption recovery takes is
pinned, labelled in `backups list` and survives the next prune; `--no-emergency-dump` skips
it, and the RTO breakdown shows what the dump cost or that it was skipped."""

from __future__ import annotations

import re

import yaml

from tests.conftest import run_drkit
from tests.integration.conftest import SandboxHandle

TIGHT = {"keep_last": 1, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}


def logical_ids(config: object) -> dict[str, object]:
    listed = run_drkit("--output", "json", "backups", "list", "--service", "postgres", config=config)  # type: ignore[arg-type]
    return {b["backup_id"]: b["pin"] for b in listed.json()["backups"] if b["kind"] == "logical"}


def test_the_emergency_dump_is_pinned_labelled_and_survives_prune(private_sandbox: SandboxHandle) -> None:
    box = private_sandbox
    doc = yaml.safe_load(box.config_path.read_text())
    doc["services"]["postgres"].setdefault("backup", {})["retention"] = TIGHT  # prune keeps only the newest
    doc["contacts"] = [{"name": "Ana Ops", "role": "on-call engineer", "phone": "+49 30 1234567"}]
    doc["escalation"] = ["Page the on-call engineer", "Call the CTO"]
    box.config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert run_drkit("backup", "postgres", config=box.config_path).code == 0

    recovered = run_drkit("--yes", "recover", "db-corruption", config=box.config_path, timeout=900)
    assert recovered.code == 0, recovered.stdout + recovered.stderr
    assert "RTO breakdown" in recovered.stdout and "emergency-dump" in recovered.stdout
    # who to call: first, before anything else the recovery says; and in its report
    assert recovered.stdout.startswith("escalation:\n  1. Page the on-call engineer\n  2. Call the CTO")
    run_id = re.search(r"recovery (\S+): journal", recovered.stdout)
    assert run_id is not None
    report = run_drkit("report", run_id[1], "--format", "md", config=box.config_path)
    assert report.code == 0 and "## Escalation" in report.stdout
    assert "| Ana Ops | on-call engineer | +49 30 1234567 |" in report.stdout
    [(dump, pin)] = logical_ids(box.config_path).items()
    assert pin is not None and pin["reason"] == "emergency dump of the db-corruption recovery of postgres"
    listing = run_drkit("backups", "list", config=box.config_path)
    assert "emergency dump of the db-corruption recovery" in listing.stdout

    # a newer dump, then prune with keep_last 1: only the pin keeps the evidence
    assert run_drkit("backup", "postgres", "--type", "logical", config=box.config_path).code == 0
    pruned = run_drkit("prune", config=box.config_path)
    assert pruned.code == 0, pruned.stdout + pruned.stderr
    assert f"keep {dump}: pinned" in pruned.stdout
    assert dump in logical_ids(box.config_path)

    skipped = run_drkit(
        "--yes", "recover", "db-corruption", "--no-emergency-dump", config=box.config_path, timeout=900
    )
    assert skipped.code == 0, skipped.stdout + skipped.stderr
    assert "skipped (--no-emergency-dump)" in skipped.stdout
    assert len(logical_ids(box.config_path)) == 2  # no new dump taken
