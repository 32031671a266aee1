"""The report's per-service verdicts and its badge say what the CLI says (issue 18, item 7): a
step that failed without ending the run (not critical) is a warning, never a failed service
under a PASSED badge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from drkit.cli.report_render import render
from drkit.domain.journal import Journal, RunKind, ServiceMeasure, StepStatus, Verdict
from drkit.engines.reports.build import build_report
from tests.conftest import run_drkit
from tests.report_journals import START, at, step

OK, FAILED = StepStatus.SUCCEEDED, StepStatus.FAILED


def passed_with_a_warning() -> Journal:
    return Journal(
        run_id="20261130T030000Z-recovery-db-corruption",
        kind=RunKind.RECOVERY,
        scenario="db-corruption",
        stack="demo",
        started_at=START,
        finished_at=at(60),
        verdict=Verdict.PASSED,
        steps=(
            step("restore", 0, 40, OK, service="postgres"),
            step("smoke-auth", 40, 45, FAILED, service="auth", detail="canary sign-in answered 503"),
            step("integrity", 45, 60, OK),
        ),
        measures=(ServiceMeasure("postgres", 40.0, 2.0, 600.0, 300.0, healthy_at=at(40)),),
    )


def test_a_non_critical_failed_step_is_a_warning_in_the_cli_and_the_report() -> None:
    journal = passed_with_a_warning()
    model = build_report(journal)
    verdicts = {s.service: s.verdict for s in model.services}
    assert verdicts == {"postgres": "met", "auth": "warning"}
    assert model.verdict_label == "PASSED WITH 1 WARNING"
    assert journal.verdict_words() == "passed with 1 warning"
    assert model.verdict_label.lower() == journal.verdict_words()
    html = render(model, "html")
    assert '<span id="verdict" class="verdict passed warnings">PASSED WITH 1 WARNING</span>' in html
    services = html[html.index('id="services"') : html.index("</table>", html.index('id="services"'))]
    assert '<td class="warning">warning</td>' in services and '<td class="failed">' not in services
    assert "warning: smoke-auth: canary sign-in answered 503" in html


def test_the_step_that_ended_a_failed_run_fails_its_service_and_earlier_ones_warn() -> None:
    journal = replace(
        passed_with_a_warning(),
        verdict=Verdict.FAILED,
        error="integrity: 3 orphaned rows",
        steps=(
            step("restore", 0, 40, OK, service="postgres"),
            step("smoke-auth", 40, 45, FAILED, service="auth", detail="canary sign-in answered 503"),
            step("integrity", 45, 60, FAILED, service="postgres", detail="3 orphaned rows"),
        ),
    )
    model = build_report(journal)
    assert {s.service: s.verdict for s in model.services} == {"postgres": "failed", "auth": "warning"}
    assert model.verdict_label == "FAILED WITH 1 WARNING"
    assert journal.verdict_words() == "failed with 1 warning"


def test_drkit_report_markdown_lists_the_warning(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_bytes(passed_with_a_warning().to_json())
    result = run_drkit("report", str(path), "--format", "md")
    assert result.code == 0, result.stderr
    assert "**Verdict: PASSED WITH 1 WARNING**" in result.stdout
    assert "- warning: smoke-auth: canary sign-in answered 503" in result.stdout
    assert "| auth | warning |" in result.stdout
