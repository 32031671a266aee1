"""The report as one self-contained HTML page: inline CSS and SVG, no script, no font, no
image, no reference to the network; it opens from a file on a machine with no network."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from drkit import __version__
from drkit.cli.report_render.figures import NO_MEASURE, duration, miss_word, moment
from drkit.cli.report_render.svg import gantt, measures_chart, trend_chart
from drkit.engines.reports.model import MISSED, ReportModel, ServiceVerdict

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2430;
margin:0;background:#f4f6f8}
main{max-width:1080px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2e8;
padding-bottom:4px}
.sub{color:#5a6472;margin:0 0 14px}
.verdict{display:inline-block;font-weight:700;font-size:18px;padding:6px 14px;border-radius:6px;color:#fff}
.verdict.passed{background:#2e7d32}.verdict.missed-target{background:#d32f2f}
.verdict.failed{background:#8e0000}.verdict.aborted,.verdict.running{background:#ef6c00}
.error{color:#8e0000;font-weight:600}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #dde2e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.met,span.met{color:#1b5e20;font-weight:600}
td.missed,span.missed{color:#fff;background:#d32f2f;font-weight:700}
td.failed{color:#fff;background:#8e0000;font-weight:700}
td.not-measured{color:#5a6472}
svg{display:block;margin:6px 0 12px;font-size:12px}
svg text{fill:#1d2430}svg text.axis{fill:#5a6472;font-size:11px}
svg text.word.missed{fill:#d32f2f;font-weight:700}svg text.word.met{fill:#2e7d32;font-weight:700}
.track{fill:#eef1f5}
.bar.met{fill:#2e7d32}.bar.missed{fill:#d32f2f}.bar.unknown{fill:#78909c}
.target{stroke:#1d2430;stroke-width:2;stroke-dasharray:4 3}
.axis{stroke:#9aa5b1;stroke-width:1}
.step.succeeded{fill:#2e7d32}.step.failed{fill:#d32f2f}.step.running,.step.interrupted{fill:#f9a825}
.step.skipped,.step.pending{fill:#b0bec5}.step.undone{fill:#6d4c41}
text.note{fill:#5a6472;font-style:italic}
.failure-line{stroke:#d32f2f;stroke-width:2}.healthy-line{stroke:#1565c0;stroke-width:1.5;
stroke-dasharray:3 2}.leader{stroke-width:1;opacity:.6}
text.marker.failure{fill:#d32f2f;font-weight:700}text.marker.healthy{fill:#1565c0}
.trend-line{fill:none;stroke:#1565c0;stroke-width:2}
.point.met{fill:#2e7d32}.point.missed{fill:#d32f2f}.point.unknown{fill:#78909c}
.point.current{stroke:#1d2430;stroke-width:2}
.trends{display:flex;flex-wrap:wrap;gap:8px 24px}.trends figure{margin:0}
figcaption{font-weight:600;font-size:13px}
footer{margin-top:32px;color:#5a6472;font-size:12px}
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[tuple[str, str]]], ident: str = "") -> str:
    """Rows of (text, css class) cells; every text escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{css}">{escape(text)}</td>' if css else f"<td>{escape(text)}</td>"
            for text, css in row
        )
        + "</tr>"
        for row in rows
    )
    id_attr = f' id="{ident}"' if ident else ""
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    return f"<table{id_attr}>{thead}<tbody>{body}</tbody></table>"


def _plain(rows: Sequence[Sequence[str]]) -> list[list[tuple[str, str]]]:
    return [[(cell, "") for cell in row] for row in rows]


def _gauge_cells(s: ServiceVerdict) -> list[tuple[str, str]]:
    cells: list[tuple[str, str]] = []
    for g in (s.rto, s.rpo):
        word = miss_word(g.met)
        css = "num " + ("missed" if g.missed else "met" if g.met else "")
        cells += [
            (duration(g.seconds) + (f" {word}" if word else ""), css.strip()),
            (duration(g.target), "num"),
        ]
    return cells


def _measures(model: ReportModel) -> str:
    if not any(g.seconds is not None for s in model.services for g in (s.rto, s.rpo)):
        return f'<p class="sub">{NO_MEASURE}</p>'
    return measures_chart(model.services)


def _service_table(model: ReportModel) -> str:
    if not model.services:
        return '<p class="sub">the journal names no service</p>'
    rows = [
        [
            (s.service, ""),
            (s.verdict, s.verdict.lower().replace(" ", "-")),
            *_gauge_cells(s),
            (moment(s.healthy_at), ""),
            (moment(s.recovered_to), ""),
            (s.detail, ""),
        ]
        for s in model.services
    ]
    headers = [
        "service",
        "verdict",
        "RTO",
        "RTO target",
        "RPO",
        "RPO target",
        "healthy at",
        "data recovered to",
        "detail",
    ]
    return _table(headers, rows, "services")


def _header(model: ReportModel) -> str:
    title = f"{model.kind.capitalize()} report: {model.scenario}"
    missed = [s.service for s in model.services if s.verdict == MISSED]
    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">stack {escape(model.stack)} · run {escape(model.run_id)}</p>',
        f'<p><span id="verdict" class="verdict {escape(model.verdict)}">'
        f"{escape(model.verdict_label)}</span></p>",
    ]
    if missed:
        parts.append(f'<p class="error missed">MISSED target: {escape(", ".join(missed))}</p>')
    if model.error:
        parts.append(f'<p class="error">{escape(model.error)}</p>')
    run = [
        ("kind", model.kind),
        ("scenario", model.scenario),
        ("started", moment(model.started_at)),
        ("finished", moment(model.finished_at)),
        ("took", duration(model.seconds)),
        ("failure injected", moment(model.failure_at)),
        ("RTO/RPO measured from", f"{moment(model.incident_at)} ({model.incident_source})"),
    ]
    return "".join(parts) + _table(["", ""], _plain(run), "run")


def _timeline(model: ReportModel) -> str:
    rows = [
        [
            (b.name, ""),
            (b.title, ""),
            (b.service or "", ""),
            ("interrupted" if b.interrupted else b.status, b.status),
            ("+" + duration(b.start) if b.start is not None else "-", "num"),
            (duration(b.seconds), "num"),
            (b.detail, ""),
        ]
        for b in model.timeline.bars
    ]
    return (
        f'<p class="sub">time from {escape(moment(model.timeline.origin))}</p>'
        + gantt(model.timeline)
        + _table(["step", "does", "service", "status", "start", "took", "detail"], rows, "steps")
    )


def _trend(model: ReportModel) -> str:
    figures = "".join(
        f"<figure><figcaption>{escape(s.service)} {s.metric}</figcaption>{trend_chart(s)}</figure>"
        for s in model.trend
    )
    note = ""
    if len(model.trend_runs) < 2:
        note = '<p class="sub">only this run of the scenario is stored: no trend yet</p>'
    headers = ["run", "kind", "started", "verdict"] + [f"{s.service} {s.metric}" for s in model.trend]
    rows = [
        [
            (run.run_id + (" (this run)" if run.current else ""), ""),
            (run.kind, ""),
            (moment(run.started_at), ""),
            (run.verdict, ""),
        ]
        + [(duration(s.points[i].seconds), "num") for s in model.trend]
        for i, run in enumerate(model.trend_runs)
    ]
    return note + f'<div class="trends">{figures}</div>' + _table(headers, rows, "trend")


def _escalation(model: ReportModel) -> str:
    """Who to call (stack.yaml's contacts and escalation path when the run was journaled)."""
    e = model.escalation
    if e is None:
        return ""
    path = "".join(f"<li>{escape(step)}</li>" for step in e.path)
    contacts = _table(["contact", "role", "reach"], _plain(e.contacts), "contacts") if e.contacts else ""
    return "<h2>Escalation</h2>" + (f"<ol>{path}</ol>" if path else "") + contacts


def render_html(model: ReportModel) -> str:
    env = (
        _table(["", ""], _plain(model.environment), "environment")
        if model.environment
        else ('<p class="sub">the journal records no environment</p>')
    )
    params = _table(["", ""], _plain(model.parameters), "parameters") if model.parameters else ""
    sections = [
        _header(model),
        _escalation(model),
        "<h2>Verdict per service</h2>" + _service_table(model),
        "<h2>RTO and RPO against target</h2>" + _measures(model),
        "<h2>Timeline</h2>" + _timeline(model),
        f"<h2>Trend: {escape(model.scenario)}, last {len(model.trend_runs)} runs</h2>" + _trend(model),
        "<h2>Environment</h2>" + env,
        ("<h2>Parameters</h2>" + params) if params else "",
    ]
    title = f"drkit {model.kind} {model.scenario} {model.verdict_label}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        + "".join(sections)
        + f"<footer>rendered by drkit {escape(__version__)} from journal {escape(model.run_id)}</footer>"
        + "</main></body></html>\n"
    )
