"""The report as Markdown: the same facts as the HTML page, as tables; the charts as text bars."""

from __future__ import annotations

from collections.abc import Sequence

from drkit.cli.report_render.figures import NO_MEASURE, duration, miss_word, moment, scale_max
from drkit.engines.reports.model import MISSED, Gauge, ReportModel, Timeline, TrendSeries

BAR_CHARS = 24
GANTT_CHARS = 48
SPARKS = "▁▂▃▄▅▆▇█"


def _cell(text: str) -> str:
    for raw, safe in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("\n", " ")):
        text = text.replace(raw, safe)
    return text.strip()


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def text_bar(seconds: float | None, target: float | None, width: int = BAR_CHARS) -> str:
    """`████████░░░┃░░` : the figure filled, the target as ┃, on the scale of the larger."""
    if seconds is None:
        return "·" * width
    full = scale_max(seconds, target)
    filled = max(1 if seconds > 0 else 0, round(width * seconds / full))
    chars = ["█" if i < filled else "░" for i in range(width)]
    if target is not None:
        chars[min(width - 1, round(width * target / full))] = "┃"
    return "".join(chars)


def gantt_lines(timeline: Timeline, width: int = GANTT_CHARS) -> list[str]:
    """Each step as `#`s from its start to its end (`!` for a failed step, `~` interrupted);
    `▼` over the column where the failure was injected."""
    scale = width / timeline.span
    label = max([len(b.name) for b in timeline.bars] + [4])
    failure = next((m for m in timeline.markers if m.kind == "failure"), None)
    lines = []
    if failure is not None:
        column = min(width - 1, int(failure.at * scale))
        lines.append(" " * (label + 2) + " " * column + f"▼ failure injected +{duration(failure.at)}")
    for bar in timeline.bars:
        row = [" "] * width
        if bar.start is not None and bar.end is not None:
            mark = "~" if bar.interrupted else "!" if bar.status == "failed" else "#"
            first = min(width - 1, int(bar.start * scale))
            last = max(first, min(width - 1, int(bar.end * scale) - 1))
            for i in range(first, last + 1):
                row[i] = mark
        tail = bar.status if bar.start is None else f"{duration(bar.seconds)} {bar.status}"
        lines.append(f"{bar.name.ljust(label)}  {''.join(row)}  {tail}")
    lines.append(" " * (label + 2) + "0" + " " * (width - 1) + f"+{duration(timeline.span)}")
    return lines


def sparkline(series: TrendSeries) -> str:
    values = [p.seconds for p in series.points]
    top = scale_max(*values, series.target)
    return "".join(
        "·" if v is None else SPARKS[min(len(SPARKS) - 1, int(len(SPARKS) * v / top))] for v in values
    )


def _gauge_row(service: str, g: Gauge) -> list[str]:
    return [
        service,
        g.metric,
        f"`{text_bar(g.seconds, g.target)}`",
        duration(g.seconds),
        duration(g.target),
        miss_word(g.met) or "-",
    ]


def _header(model: ReportModel) -> list[str]:
    lines = [
        f"# {model.kind.capitalize()} report: {model.scenario}",
        "",
        f"**Verdict: {model.verdict_label}** (run `{model.run_id}`, stack `{model.stack}`)",
        "",
    ]
    missed = [s.service for s in model.services if s.verdict == MISSED]
    if missed:
        lines += [f"**MISSED target:** {', '.join(missed)}", ""]
    if model.error:
        lines += [f"Error: {model.error}", ""]
    run = [
        ["kind", model.kind],
        ["started", moment(model.started_at)],
        ["finished", moment(model.finished_at)],
        ["took", duration(model.seconds)],
        ["failure injected", moment(model.failure_at)],
        ["RTO/RPO measured from", f"{moment(model.incident_at)} ({model.incident_source})"],
    ]
    return lines + _table(["run", ""], run)


def _services(model: ReportModel) -> list[str]:
    rows = []
    for s in model.services:
        figures = [f"{duration(g.seconds)} {miss_word(g.met)}".strip() for g in (s.rto, s.rpo)]
        rows.append(
            [
                s.service,
                s.verdict,
                figures[0],
                duration(s.rto.target),
                figures[1],
                duration(s.rpo.target),
                moment(s.healthy_at),
                moment(s.recovered_to),
            ]
        )
    headers = [
        "service",
        "verdict",
        "RTO",
        "RTO target",
        "RPO",
        "RPO target",
        "healthy at",
        "data recovered to",
    ]
    bars = [_gauge_row(s.service, g) for s in model.services for g in (s.rto, s.rpo)]
    table = _table(headers, rows) if rows else ["The journal names no service.", ""]
    return ["## Verdict per service", "", *table, *_bars(bars)]


def _bars(bars: list[list[str]]) -> list[str]:
    if all(row[3] == "-" for row in bars):  # no figure measured
        return ["## RTO and RPO against target", "", f"{NO_MEASURE.capitalize()}.", ""]
    return [
        "## RTO and RPO against target",
        "",
        "Bars: █ measured, ┃ the target, on the scale of the larger.",
        "",
        *_table(["service", "metric", "bar", "measured", "target", "verdict"], bars),
    ]


def _timeline(model: ReportModel) -> list[str]:
    rows = [
        [
            b.name,
            b.title,
            b.service or "",
            "interrupted" if b.interrupted else b.status,
            "-" if b.start is None else f"+{duration(b.start)}",
            duration(b.seconds),
            b.detail,
        ]
        for b in model.timeline.bars
    ]
    return [
        "## Timeline",
        "",
        f"Time from {moment(model.timeline.origin)}.",
        "",
        "```",
        *gantt_lines(model.timeline),
        "```",
        "",
        *_table(["step", "does", "service", "status", "start", "took", "detail"], rows),
    ]


def _trend(model: ReportModel) -> list[str]:
    lines = [f"## Trend: {model.scenario}, last {len(model.trend_runs)} runs", ""]
    if len(model.trend_runs) < 2:
        lines += ["Only this run of the scenario is stored: no trend yet.", ""]
    lines += [
        f"- {s.service} {s.metric}: `{sparkline(s)}` (target {duration(s.target)})" for s in model.trend
    ]
    headers = ["run", "kind", "started", "verdict"] + [f"{s.service} {s.metric}" for s in model.trend]
    rows = [
        [run.run_id + (" (this run)" if run.current else ""), run.kind, moment(run.started_at), run.verdict]
        + [duration(s.points[i].seconds) for s in model.trend]
        for i, run in enumerate(model.trend_runs)
    ]
    return [*lines, "", *_table(headers, rows)]


def _escalation(model: ReportModel) -> list[str]:
    e = model.escalation
    if e is None:
        return []
    lines = ["## Escalation", ""]
    lines += [f"{n}. {step}" for n, step in enumerate(e.path, 1)]
    if e.path:
        lines.append("")
    if e.contacts:
        lines += _table(["contact", "role", "reach"], e.contacts)
    return lines


def render_markdown(model: ReportModel) -> str:
    lines = _header(model) + _escalation(model) + _services(model) + _timeline(model) + _trend(model)
    lines += ["## Environment", ""]
    lines += (
        _table(["", ""], model.environment)
        if model.environment
        else ["The journal records no environment.", ""]
    )
    if model.parameters:
        lines += ["## Parameters", "", *_table(["", ""], model.parameters)]
    return "\n".join(lines).rstrip() + "\n"
