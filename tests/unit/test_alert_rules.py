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
    assert "SUCCESS: 8 rules found" in result.stdout


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


NEVER_BACKED_UP = """\
version: 1
stack: demo
repositories:
  local: {type: fs, path: ./repo}
services:
  postgres: {kind: postgres, dsn: "host=127.0.0.1 port=1 dbname=app connect_timeout=1", rpo: 5m}
  cache: {kind: redis, url: "redis://127.0.0.1:1/0", rpo: 15m}
  hasura: {kind: hasura, url: "http://127.0.0.1:1", depends_on: [postgres]}
"""


def test_promtool_fires_for_a_stack_whose_backups_never_succeeded(tmp_path: Path) -> None:
    """drkit's own exposition for a stack that never had a backup, held for two hours as
    promtool's input: "no backups" and "status red" fire for every service drkit backs up,
    while the timestamp rule has nothing to age."""
    from prometheus_client.parser import text_string_to_metric_families

    from drkit.config.loader import load_stack
    from drkit.engines.core.workspace import open_workspace
    from drkit.engines.ops.metrics import exposition
    from drkit.engines.ops.status import build_status

    (tmp_path / "stack.yaml").write_text(NEVER_BACKED_UP)
    ws = open_workspace(load_stack(tmp_path / "stack.yaml"))
    text = exposition(lambda: build_status(ws, probe_server=False)).decode()
    series = []
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            labels = {"instance": "backup:9188", "job": "drkit", **sample.labels}
            body = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            series.append({"series": f"{sample.name}{{{body}}}", "values": f"{sample.value:g}x30"})
    services = ("postgres", "cache", "hasura")
    spec = {
        "rule_files": ["drkit-alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "5m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "2h",
                        "alertname": alert,
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "instance": "backup:9188",
                                    "job": "drkit",
                                    "service": s,
                                }
                            }
                            for s in services
                        ],
                    }
                    for alert in ("DrkitNoBackups", "DrkitStatusRed")
                ]
                + [{"eval_time": "2h", "alertname": "DrkitBackupMissed", "exp_alerts": []}],
            }
        ],
    }
    rules = yaml.safe_load((CONTRIB / "drkit-alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        rule.pop("annotations", None)  # the texts are checked in drkit-alerts.test.yml
    (tmp_path / "drkit-alerts.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "t.yml").write_text(yaml.safe_dump(spec))
    result = promtool("test", "rules", "t.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr + text
