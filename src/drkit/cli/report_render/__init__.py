"""Render a `ReportModel` (engines/reports) as one self-contained HTML page, as Markdown, or
as JSON. Presentation only: every figure and verdict comes from the model."""

from __future__ import annotations

import json

from drkit.cli.render import to_jsonable
from drkit.cli.report_render.html import render_html
from drkit.cli.report_render.markdown import render_markdown
from drkit.engines.reports.model import ReportModel

FORMATS = ("html", "md", "json")


def render_json(model: ReportModel) -> str:
    return json.dumps(to_jsonable(model), indent=2) + "\n"


def render(model: ReportModel, fmt: str) -> str:
    if fmt == "html":
        return render_html(model)
    if fmt == "md":
        return render_markdown(model)
    return render_json(model)


__all__ = ["FORMATS", "render", "render_html", "render_json", "render_markdown"]
