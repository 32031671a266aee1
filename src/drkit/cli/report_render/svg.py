"""The report's charts as inline SVG (no script, no external reference): measured against
target bars, the steps' Gantt chart, and the trend lines. Colours come from the page's CSS
classes, so the HTML page's <style> is the single place they are set."""

from __future__ import annotations

import re
from html import escape

from drkit.cli.report_render.figures import duration, miss_word, scale_max
from drkit.engines.reports.model import Gauge, ServiceVerdict, Timeline, TimelineBar, TrendSeries

LABEL_W = 200
BAR_W = 420
ROW_H = 26


def _svg(ident: str, css: str, width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg id="{escape(ident)}" class="{css}" role="img" aria-label="{escape(label)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, content: str, css: str = "", anchor: str = "start") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{cls}>{escape(content)}</text>'


def _state(met: bool | None) -> str:
    return "unknown" if met is None else ("met" if met else "missed")


def measures_chart(services: tuple[ServiceVerdict, ...]) -> str:
    """Per service an RTO and an RPO bar, the target as a vertical mark on each."""
    rows = [(s.service, g) for s in services for g in (s.rto, s.rpo)]
    height = ROW_H * max(1, len(rows)) + 10
    width = LABEL_W + BAR_W + 260
    body: list[str] = []
    for index, (service, g) in enumerate(rows):
        body.extend(_gauge_row(service, g, 6 + index * ROW_H))
    return _svg("measures", "chart measures", width, height, body, "RTO and RPO against target")


def _gauge_row(service: str, g: Gauge, y: float) -> list[str]:
    full = scale_max(g.seconds, g.target)
    state = _state(g.met)
    css = f"bar {g.metric.lower()} {state}"
    out = [_text(LABEL_W - 8, y + 15, f"{service} {g.metric}", "label", "end")]
    out.append(f'<rect class="track" x="{LABEL_W}" y="{y + 3}" width="{BAR_W}" height="{ROW_H - 8}"/>')
    if g.seconds is not None:
        w = max(1.0, BAR_W * g.seconds / full)
        tip = f"{service} {g.metric} {duration(g.seconds)}"
        out.append(
            f'<rect class="{css}" data-seconds="{g.seconds:.3f}" x="{LABEL_W}" y="{y + 3}" '
            f'width="{w:.1f}" height="{ROW_H - 8}"><title>{escape(tip)}</title></rect>'
        )
    if g.target is not None:
        x = LABEL_W + BAR_W * g.target / full
        out.append(f'<line class="target" x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + ROW_H - 2}"/>')
    words = f"{duration(g.seconds)} / target {duration(g.target)}"
    if g.seconds is None:
        words = f"not measured / target {duration(g.target)}"
    verdict = miss_word(g.met)
    out.append(_text(LABEL_W + BAR_W + 10, y + 15, words, "figure"))
    if verdict:
        out.append(_text(LABEL_W + BAR_W + 250, y + 15, verdict, f"word {state}", "end"))
    return out


def gantt(timeline: Timeline) -> str:
    """One bar per step from its start to its end, coloured by status; the failure and each
    service's healthy moment as vertical lines, labelled under the time axis."""
    top = 18
    bottom = top + ROW_H * max(1, len(timeline.bars))
    height = bottom + 26 + 15 * len(timeline.markers)
    scale = BAR_W / timeline.span
    body: list[str] = []
    for index, bar in enumerate(timeline.bars):
        body.extend(_step_row(bar, top + index * ROW_H, scale))
    body.extend(_axis(timeline.span, scale, bottom))
    for index, marker in enumerate(timeline.markers):
        x = LABEL_W + marker.at * scale
        line_css = "failure-line" if marker.kind == "failure" else "healthy-line"
        body.append(f'<line class="{line_css}" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{bottom}"/>')
        label = f"{marker.label} +{duration(marker.at)}"
        body.append(_text(LABEL_W - 8, bottom + 34 + 15 * index, label, f"marker {marker.kind}", "end"))
        body.append(
            f'<line class="{line_css} leader" x1="{LABEL_W - 4}" x2="{x:.1f}" '
            f'y1="{bottom + 30 + 15 * index}" y2="{bottom + 30 + 15 * index}"/>'
        )
    return _svg("timeline", "chart gantt", LABEL_W + BAR_W + 40, height, body, "steps over time")


def _step_row(bar: TimelineBar, y: float, scale: float) -> list[str]:
    out = [_text(LABEL_W - 8, y + 15, bar.name, "label", "end")]
    if bar.start is None or bar.end is None:
        out.append(_text(LABEL_W + 4, y + 15, bar.status, f"note {bar.status}"))
        return out
    status = "interrupted" if bar.interrupted else bar.status
    width = max(2.0, (bar.end - bar.start) * scale)
    tip = f"{bar.title}: {status}, {duration(bar.seconds)}"
    out.append(
        f'<rect class="step {status}" data-step="{escape(bar.name)}" '
        f'x="{LABEL_W + bar.start * scale:.1f}" y="{y + 3}" width="{width:.1f}" height="{ROW_H - 8}">'
        f"<title>{escape(tip)}</title></rect>"
    )
    return out


def _axis(span: float, scale: float, y: float) -> list[str]:
    out = [f'<line class="axis" x1="{LABEL_W}" x2="{LABEL_W + BAR_W}" y1="{y}" y2="{y}"/>']
    for tick in range(5):
        at = span * tick / 4
        x = LABEL_W + at * scale
        out.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + 4}"/>')
        out.append(_text(x, y + 14, f"+{duration(at)}", "axis", "middle"))
    return out


def trend_chart(series: TrendSeries) -> str:
    """The figure across runs (oldest left), the target dashed, each point met or missed."""
    width, height, left, right, top, bottom = 380, 170, 58, 12, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [p.seconds for p in series.points]
    full = scale_max(*values, series.target)
    step = plot_w / max(1, len(series.points) - 1)

    def xy(index: int, seconds: float) -> tuple[float, float]:
        x = left + (index * step if len(series.points) > 1 else plot_w / 2)
        return x, top + plot_h - plot_h * seconds / full

    body = [
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>',
        f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>',
        _text(left - 4, top + 8, duration(full), "axis", "end"),
        _text(left - 4, top + plot_h, "0", "axis", "end"),
    ]
    if series.target is not None:
        _, ty = xy(0, series.target)
        body.append(f'<line class="target" x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        body.append(_text(left + plot_w, ty - 3, f"target {duration(series.target)}", "axis", "end"))
    drawn = [(i, xy(i, p.seconds)) for i, p in enumerate(series.points) if p.seconds is not None]
    if len(drawn) > 1:
        coords = " ".join(f"{x:.1f},{y:.1f}" for _, (x, y) in drawn)
        body.append(f'<polyline class="trend-line" points="{coords}"/>')
    for index, (x, y) in drawn:
        point = series.points[index]
        met = None if series.target is None or point.seconds is None else point.seconds <= series.target
        css = f"point {_state(met)}" + (" current" if point.current else "")
        tip = f"{point.run_id}: {duration(point.seconds)}"
        radius = 5 if point.current else 3.5
        body.append(
            f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    if series.points:
        body.append(_text(left, height - 8, series.points[0].started_at.strftime("%Y-%m-%d"), "axis"))
        body.append(
            _text(left + plot_w, height - 8, series.points[-1].started_at.strftime("%Y-%m-%d"), "axis", "end")
        )
    ident = f"trend-{series.metric.lower()}-" + re.sub(r"[^A-Za-z0-9_-]", "-", series.service)
    return _svg(ident, "chart trend", width, height, body, f"{series.service} {series.metric} over runs")
