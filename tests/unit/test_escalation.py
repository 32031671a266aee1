"""Escalation as the source document has it: notifications routed by time window as well as
severity (business hours to the team's chat, after hours to the pager, critical to both) in
the configuration's time zone; contacts and the escalation path printed by `recover`, by a red
`status` and in the drill and recovery reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.cli.report_render import render
from drkit.config.loader import load_stack
from drkit.domain.errors import ConfigError
from drkit.domain.journal import Journal, RunKind, Verdict
from drkit.domain.stack import Severity
from drkit.engines.ops.notify import Message, send
from drkit.engines.reports.build import build_report
from tests.conftest import run_drkit
from tests.receiver import receiver

STACK = """\
version: 1
stack: demo
repositories:
  local: {{type: fs, path: ./repo}}
services:
  cache: {{kind: redis, url: "redis://127.0.0.1:1/0", rpo: 15m}}
notifications:
  time_zone: {zone}
  business_hours: {{days: mon-fri, start: "09:00", end: "18:00"}}
  targets:
    - url: file:{chat}
      hours: business
    - url: file:{pager}
      hours: after
contacts:
  - {{name: Ana Ops, role: on-call engineer, phone: "+49 30 1234567", email: ana@example.org}}
  - {{name: Bo DBA, role: database administrator, chat: "@bo"}}
escalation:
  - "Business hours: #ops-emergency on Slack"
  - "After hours: page the on-call engineer through PagerDuty"
  - "Critical: call the CTO"
"""

# 2026-12-07 is a Monday; Berlin is UTC+1 in December
MONDAY_10_BERLIN = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
MONDAY_0830_UTC = datetime(2026, 12, 7, 8, 30, tzinfo=UTC)  # 09:30 in Berlin, 08:30 in UTC
MONDAY_20_BERLIN = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
SATURDAY_11_BERLIN = datetime(2026, 12, 12, 10, 0, tzinfo=UTC)


def write(tmp_path: Path, chat: str, pager: str, zone: str = "Europe/Berlin") -> Path:
    (tmp_path / "chat").write_text(chat)
    (tmp_path / "pager").write_text(pager)
    path = tmp_path / "stack.yaml"
    path.write_text(STACK.format(zone=zone, chat=tmp_path / "chat", pager=tmp_path / "pager"))
    return path


@pytest.mark.parametrize(
    ("now", "severity", "zone", "expected"),
    [
        (MONDAY_10_BERLIN, Severity.WARNING, "Europe/Berlin", {"chat"}),
        (MONDAY_20_BERLIN, Severity.WARNING, "Europe/Berlin", {"pager"}),
        (SATURDAY_11_BERLIN, Severity.WARNING, "Europe/Berlin", {"pager"}),
        (MONDAY_10_BERLIN, Severity.CRITICAL, "Europe/Berlin", {"chat", "pager"}),
        (MONDAY_20_BERLIN, Severity.CRITICAL, "Europe/Berlin", {"chat", "pager"}),
        (MONDAY_10_BERLIN, Severity.INFO, "Europe/Berlin", set()),  # below min_severity
        # the configuration's zone decides: 08:30 UTC is business hours in Berlin, not in UTC
        (MONDAY_0830_UTC, Severity.WARNING, "Europe/Berlin", {"chat"}),
        (MONDAY_0830_UTC, Severity.WARNING, "UTC", {"pager"}),
    ],
)
def test_messages_go_by_time_window_and_severity(
    tmp_path: Path, now: datetime, severity: Severity, zone: str, expected: set[str]
) -> None:
    with receiver() as rx:
        stack = load_stack(write(tmp_path, rx.url("chat"), rx.url("pager"), zone))
        deliveries = send(stack, Message("backup failed", "details", severity), now=now)
        got = {m["title"] for m in rx.messages()}
        assert len(rx.messages()) == len(expected)
        assert got == ({"backup failed"} if expected else set())
        sent = {name for name, d in zip(("chat", "pager"), deliveries, strict=True) if d.sent}
        assert sent == expected
        for d in deliveries:
            assert d.sent or d.why  # a skipped target says why


def test_a_skipped_target_says_why_and_dry_run_shows_the_routes(tmp_path: Path) -> None:
    with receiver() as rx:
        stack = load_stack(write(tmp_path, rx.url("chat"), rx.url("pager")))
        chat, pager = send(stack, Message("t", "b", Severity.WARNING), now=MONDAY_20_BERLIN)
        assert chat.skipped and chat.why == (
            "outside business hours (Mon 20:00 Europe/Berlin); it takes business hours only"
        )
        assert pager.sent
        before = len(rx.messages())
        path = tmp_path / "stack.yaml"
        dry = run_drkit(
            "--dry-run",
            "notify",
            "test",
            "--severity",
            "warning",
            "--at",
            "2026-12-07T10:00:00+01:00",
            config=path,
        )
        assert dry.code == 0, dry.stderr
        assert "would send" in dry.stdout and "it takes after hours only" in dry.stdout
        assert len(rx.messages()) == before  # a dry run sends nothing


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("time_zone: Europe/Berlin", "time_zone: Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (("days: mon-fri", "days: weekdays"), "bad days 'weekdays'"),
        (('start: "09:00"', 'start: "9am"'), "notifications.business_hours.start"),
        (("hours: after", "hours: night"), "notifications.targets.1.hours"),
    ],
)
def test_bad_routing_configuration_names_the_key(tmp_path: Path, change: tuple[str, str], words: str) -> None:
    path = write(tmp_path, "json://127.0.0.1:1/a", "json://127.0.0.1:1/b")
    path.write_text(path.read_text().replace(*change))
    with pytest.raises(ConfigError, match="notifications") as exc:
        load_stack(path)
    assert words in exc.value.message


def test_a_red_status_prints_who_to_call(tmp_path: Path) -> None:
    path = write(tmp_path, "json://127.0.0.1:1/a", "json://127.0.0.1:1/b")
    result = run_drkit("status", config=path)  # no backup at all: red
    assert result.code == 3
    out = result.stdout
    assert "escalation:\n  1. Business hours: #ops-emergency on Slack" in out
    assert "  - Ana Ops (on-call engineer): +49 30 1234567, ana@example.org" in out
    assert "  - Bo DBA (database administrator): @bo" in out
    data = run_drkit("--output", "json", "status", config=path).json()
    assert data["escalation"]["path"][2] == "Critical: call the CTO"
    assert data["escalation"]["contacts"][0]["name"] == "Ana Ops"


def test_recover_prints_who_to_call_first(tmp_path: Path) -> None:
    path = write(tmp_path, "json://127.0.0.1:1/a", "json://127.0.0.1:1/b")
    result = run_drkit("recover", "data-loss", config=path)  # refused (no --target-time): still first
    assert result.code == 2
    assert result.stdout.startswith("escalation:\n  1. Business hours")
    assert "Ana Ops (on-call engineer)" in result.stdout


def test_drill_and_recovery_reports_show_who_to_call(tmp_path: Path) -> None:
    stack = load_stack(write(tmp_path, "json://127.0.0.1:1/a", "json://127.0.0.1:1/b"))
    start = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    for kind in (RunKind.DRILL, RunKind.RECOVERY):
        journal = Journal(
            run_id=f"20261207T030000Z-{kind.value}-db-corruption",
            kind=kind,
            scenario="db-corruption",
            stack="demo",
            started_at=start,
            finished_at=start + timedelta(minutes=3),
            verdict=Verdict.PASSED,
            environment={"drkit": "x", "escalation": stack.escalation_record()},
        )
        model = build_report(journal)
        assert model.escalation is not None and model.escalation.path[0].startswith("Business hours")
        assert all("escalation" not in key for key, _ in model.environment)
        md = render(model, "md")
        assert (
            "## Escalation" in md and "| Ana Ops | on-call engineer | +49 30 1234567, ana@example.org |" in md
        )
        html = render(model, "html")
        assert "<h2>Escalation</h2>" in html and "<li>After hours: page the on-call engineer" in html
