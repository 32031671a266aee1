"""The report model computed from journals built in code, and its Markdown and HTML: the
verdicts, the figures against their targets, the timeline, the trend over the same
scenario's earlier runs, and a missed target marked as MISSED."""

from __future__ import annotations

import re
from dataclasses import replace

from drkit.cli.report_render import render_html, render_json, render_markdown
from drkit.cli.report_render.markdown import text_bar
from drkit.domain.journal import StepStatus, Verdict
from drkit.engines.reports.build import build_report
from drkit.engines.reports.model import FAILED, MET, MISSED, NOT_MEASURED, WARNING
from tests.report_journals import PAST_RTO, failed_recovery, missed_drill, past_drills


def test_verdict_per_service_marks_the_missed_target() -> None:
    model = build_report(missed_drill(), past_drills())
    assert model.verdict == "missed-target"
    assert model.verdict_label == "MISSED TARGET"
    assert model.missed
    by_name = {s.service: s for s in model.services}
    assert list(by_name) == ["postgres", "redis"]
    postgres, redis = by_name["postgres"], by_name["redis"]
    assert postgres.verdict == MISSED
    assert (postgres.rto.seconds, postgres.rto.target, postgres.rto.met, postgres.rto.missed) == (
        95.0,
        60.0,
        False,
        True,
    )
    assert postgres.rpo.met is True and not postgres.rpo.missed
    assert redis.verdict == MET
    assert redis.rto.met and redis.rpo.met


def test_timeline_bars_and_the_failure_moment() -> None:
    model = build_report(missed_drill())
    timeline = model.timeline
    assert timeline.origin == missed_drill().started_at
    assert timeline.span == 136.0  # the run's end
    bars = {b.name: b for b in timeline.bars}
    assert [b.name for b in timeline.bars][:3] == ["build-copy", "capture", "inject"]
    assert (bars["restore"].start, bars["restore"].end, bars["restore"].seconds) == (47.0, 120.0, 73.0)
    assert bars["report-copy"].start is None and bars["report-copy"].status == "skipped"
    failure = [m for m in timeline.markers if m.kind == "failure"]
    assert [(m.at, m.label) for m in failure] == [(40.0, "failure injected")]
    healthy = {m.label: m.at for m in timeline.markers if m.kind == "healthy"}
    assert healthy == {"postgres healthy": 135.0, "redis healthy": 60.0}


def test_trend_takes_the_same_scenario_up_to_this_run() -> None:
    model = build_report(missed_drill(), past_drills())
    # three earlier runs of db-corruption and this one; not full-outage, not the later run
    assert [r.run_id[:8] for r in model.trend_runs] == ["20261109", "20261116", "20261123", "20261130"]
    assert [r.current for r in model.trend_runs] == [False, False, False, True]
    rto = next(s for s in model.trend if s.service == "postgres" and s.metric == "RTO")
    assert [p.seconds for p in rto.points] == [*PAST_RTO, 95.0]
    assert rto.target == 60.0
    assert [(s.service, s.metric) for s in model.trend] == [
        ("postgres", "RTO"),
        ("postgres", "RPO"),
        ("redis", "RTO"),
        ("redis", "RPO"),
    ]


def test_a_failed_step_fails_its_service_and_an_interrupted_step_runs_to_the_end() -> None:
    journal = failed_recovery()
    model = build_report(journal, [*past_drills(), missed_drill()])
    assert model.verdict_label == "FAILED"
    assert {s.service: s.verdict for s in model.services} == {"postgres": FAILED, "redis": NOT_MEASURED}
    bars = {b.name: b for b in model.timeline.bars}
    assert bars["redis"].interrupted and bars["redis"].start == 4.0 and bars["redis"].end == 25.0
    assert not bars["restore"].interrupted and bars["restore"].status == "failed"
    assert model.timeline.markers == ()  # a recovery has no failure_at and no healthy service
    # its trend still shows the services the earlier runs measured, this run as a gap
    rto = next(s for s in model.trend if s.service == "postgres" and s.metric == "RTO")
    assert [p.seconds for p in rto.points] == [*PAST_RTO, 95.0, None]


def test_a_measure_with_a_failed_step_is_failed_not_met() -> None:
    drill = missed_drill()
    broken = drill.with_step(replace(drill.step("redis"), status=StepStatus.FAILED))
    # the run went on past it (not critical): a warning, as the CLI says; never "met"
    assert {s.service: s.verdict for s in build_report(broken).services}["redis"] == WARNING
    ended = replace(broken, verdict=Verdict.FAILED, steps=broken.steps[:7])  # it ended the run
    assert {s.service: s.verdict for s in build_report(ended).services}["redis"] == FAILED


def test_environment_and_parameters_are_flattened_for_a_table() -> None:
    model = build_report(missed_drill())
    env = dict(model.environment)
    assert env["versions.postgres"] == "15.8"
    assert env["machine.cpus"] == "2"
    assert env["data_sizes.postgres"] == "1.2 GiB"
    assert dict(model.parameters)["targets.backup"] == "20261130T020000Z-base"


def test_markdown_holds_the_same_facts() -> None:
    text = render_markdown(build_report(missed_drill(), past_drills()))
    assert "**Verdict: MISSED TARGET**" in text
    assert "**MISSED target:** postgres" in text
    assert "| postgres | MISSED | 1m35s MISSED | 1m00s | 4.2s met | 5m00s |" in text
    assert f"| postgres | RTO | `{text_bar(95.0, 60.0)}` | 1m35s | 1m00s | MISSED |" in text
    assert "▼ failure injected +40.0s" in text
    assert re.search(r"^restore +#+ +1m13s succeeded$", text, re.MULTILINE)
    assert "| versions.postgres | 15.8 |" in text
    assert "| 20261123T030000Z-drill-db-corruption | drill |" in text
    assert "| 20261130T030000Z-drill-db-corruption (this run) |" in text
    # a cell's pipe and markup cannot break the table or inject HTML
    assert "4 tables, 10234 rows \\| checksums" in text
    assert "&lt;b&gt;bytes&lt;/b&gt;" in text and "<b>" not in text


def test_text_bar_puts_the_figure_and_the_target_on_one_scale() -> None:
    assert text_bar(50.0, 100.0, width=23) == "██████████░░░░░░░░░░┃░░"[:23]
    assert text_bar(None, 10.0, width=5) == "·····"
    over = text_bar(200.0, 100.0, width=20)
    assert over.count("┃") == 1 and over.index("┃") < over.rindex("█")


def test_html_is_self_contained_and_marks_the_miss() -> None:
    html = render_html(build_report(missed_drill(), past_drills()))
    assert "http://" not in html and "https://" not in html
    for tag in ("<script", "<link", "<img", "<iframe", "@import", "url("):
        assert tag not in html.lower()
    assert '<span id="verdict" class="verdict missed-target">MISSED TARGET</span>' in html
    assert '<td class="missed">MISSED</td>' in html
    assert 'class="bar rto missed" data-seconds="95.000"' in html
    assert '<svg id="timeline"' in html and 'class="failure-line"' in html
    assert '<svg id="trend-rto-postgres"' in html and 'class="trend-line"' in html
    assert "&lt;b&gt;bytes&lt;/b&gt;" in html and "<b>bytes" not in html


def test_json_is_the_model() -> None:
    import json

    data = json.loads(render_json(build_report(missed_drill(), past_drills())))
    assert data["verdict"] == "missed-target"
    assert data["services"][0]["rto"] == {
        "metric": "RTO",
        "seconds": 95.0,
        "target": 60.0,
        "met": False,
        "missed": True,
    }
    assert data["timeline"]["markers"][0] == {"label": "failure injected", "at": 40.0, "kind": "failure"}
    assert len(data["trend_runs"]) == 4


def test_rto_counts_from_the_failure_the_incident_or_the_start() -> None:
    drill = build_report(missed_drill())
    assert (drill.incident_at, drill.incident_source) == (missed_drill().failure_at, "failure injected")
    recovery = failed_recovery()
    assert build_report(recovery).incident_source == "recovery start"
    assert build_report(recovery).incident_at == recovery.started_at
    since = replace(recovery, parameters={"since": "2026-11-30 03:55:00Z"})
    model = build_report(since)
    assert model.incident_source == "--since"
    assert model.incident_at is not None and model.incident_at.isoformat() == "2026-11-30T03:55:00+00:00"
    assert "| RTO/RPO measured from | 2026-11-30 03:55:00 UTC (--since) |" in render_markdown(model)


def test_a_figure_no_run_measured_has_no_trend_and_a_small_figure_still_shows() -> None:
    drill = missed_drill()
    no_rpo = replace(drill, measures=(replace(drill.measures[0], rpo_seconds=None), drill.measures[1]))
    series = [(s.service, s.metric) for s in build_report(no_rpo).trend]
    assert ("postgres", "RPO") not in series and ("postgres", "RTO") in series
    assert text_bar(1.4, 600.0, width=24).startswith("█░")


def test_a_drill_that_failed_before_any_measure_fails_the_service_it_recovers() -> None:
    """The drill engine's shape: steps name no service, the scenario's service is a parameter."""
    drill = missed_drill()
    steps = tuple(replace(s, service=None) for s in drill.steps[:6])
    failed = replace(
        drill,
        steps=(*steps[:5], replace(steps[5], status=StepStatus.FAILED, detail="recovery stopped")),
        measures=(),
        verdict=Verdict.FAILED,
        parameters={"service": "postgres", "since": None},
        error="restore: recovery stopped",
    )
    model = build_report(failed)
    assert [(s.service, s.verdict) for s in model.services] == [("postgres", FAILED)]
    text = render_markdown(model)
    assert "**Verdict: FAILED**" in text and "Error: restore: recovery stopped" in text
    assert "Nothing measured: the run did not get as far as a healthy service." in text
    html = render_html(model)
    assert '<svg id="measures"' not in html and "nothing measured" in html
    assert re.search(r'<rect class="step failed" data-step="restore"', html)
    assert build_report(replace(failed, parameters={})).services == ()
    assert "The journal names no service." in render_markdown(build_report(replace(failed, parameters={})))
