"""The shipped alert rules pass promtool, and "RPO at risk" fires in promtool's rule test.
promtool comes with the Debian package `prometheus` (the Makefile installs it): without it
these tests fail rather than skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"


def promtool(*args: str, cwd: Path = CONTRIB) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: install the Debian package `prometheus` (make system-deps)"
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "drkit-alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_rpo_at_risk_fires_in_promtool_test() -> None:
    result = promtool("test", "rules", "drkit-alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_test_fails_when_rpo_at_risk_is_expected_silent(tmp_path: Path) -> None:
    """The case above proves something: claim the alert stays silent at 7m and promtool
    reports that it fired."""
    shutil.copy(CONTRIB / "drkit-alerts.yml", tmp_path)
    spec = yaml.safe_load((CONTRIB / "drkit-alerts.test.yml").read_text())
    for case in spec["tests"][0]["alert_rule_test"]:
        if case["alertname"] == "DrkitRPOAtRisk":
            case["exp_alerts"] = []
    (tmp_path / "t.yml").write_text(yaml.safe_dump(spec))
    result = promtool("test", "rules", "t.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "DrkitRPOAtRisk" in result.stdout + result.stderr
    assert 'service="postgres"' in result.stdout + result.stderr
