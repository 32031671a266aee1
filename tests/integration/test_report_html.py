"""The HTML report as a reader sees it: opened from a file in headless Chromium (the Debian
`chromium` package; `make system-deps` installs it) with the network features off, its
screenshot a real picture (not blank), and its DOM holding the charts, the figures and the
verdict, a missed target marked MISSED. No sandbox services are needed."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from drkit.cli.report_render import render_html
from drkit.engines.reports.build import build_report
from tests.report_journals import missed_drill, past_drills

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSED_RED = (0xD3, 0x2F, 0x2F)  # .bar.missed, .step.failed
SUCCEEDED_GREEN = (0x2E, 0x7D, 0x32)  # .bar.met, .step.succeeded


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: `make system-deps` installs the Debian package")
    with tempfile.TemporaryDirectory(prefix="drkit-chromium-") as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB(A) rows of an 8-bit truecolour PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format: depth {depth}, colour type {colour}"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(r) if channels == 3 else _rgb(r) for r in rows]


def _rgb(row: bytes) -> bytes:
    return b"".join(row[i : i + 3] for i in range(0, len(row), 4))


class Dom(HTMLParser):
    """Elements (tag, attributes) and the text of the rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, tag: str, *classes: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and set(classes) <= set(a.get("class", "").split())]

    def by_id(self, ident: str) -> tuple[str, dict[str, str]]:
        found = [(t, a) for t, a in self.elements if a.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident}"
        return found[0]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(build_report(missed_drill(), past_drills())))
    return path


def test_the_screenshot_is_a_real_picture_with_the_verdict_colours(report_file: Path) -> None:
    shot = report_file.parent / "shot.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1200,1600", report_file.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert len(data) > 20_000, f"screenshot of {len(data)} bytes"
    width, height, rows = decode_png(data)
    assert (width, height) == (1200, 1600)
    pixels = {row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 3 * 4)}
    assert len(pixels) > 50, f"only {len(pixels)} colours: a blank page?"
    every = {bytes(row[i : i + 3]) for row in rows for i in range(0, len(row), 3)}
    assert bytes(MISSED_RED) in every, "no pixel of the missed-target red (#d32f2f): the miss is not shown"
    assert bytes(SUCCEEDED_GREEN) in every, "no pixel of the succeeded green: no step or met bar drawn"


def test_the_dom_holds_the_charts_figures_and_verdict(report_file: Path) -> None:
    result = chromium("--dump-dom", report_file.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = Dom()
    dom.feed(result.stdout)
    text = " ".join(" ".join(dom.text).split())

    assert dom.by_id("verdict")[1]["class"] == "verdict missed-target"
    assert "MISSED TARGET" in text and "MISSED target: postgres" in text
    assert dom.with_class("td", "missed"), "no table cell marked missed"

    # RTO/RPO bars: the postgres RTO bar over target, with its figure
    assert dom.by_id("measures")[0] == "svg"
    missed_bars = dom.with_class("rect", "bar", "rto", "missed")
    assert [b["data-seconds"] for b in missed_bars] == ["95.000"]
    assert len(dom.with_class("rect", "bar", "met")) == 3
    assert "1m35s / target 1m00s" in text and "20.0s / target 2m00s" in text

    # the Gantt chart: one bar per started step, the failure as a vertical line
    assert dom.by_id("timeline")[0] == "svg"
    steps = dom.with_class("rect", "step")
    assert [s["data-step"] for s in steps] == [
        "build-copy", "capture", "inject", "stop", "move-aside", "restore", "redis", "verify",
    ]  # fmt: skip
    assert len(dom.with_class("line", "failure-line")) == 2  # the line and its label's leader
    assert "failure injected +40.0s" in text

    # the trend over the four runs, and the environment table
    assert dom.by_id("trend-rto-postgres")[0] == "svg"
    assert len(dom.with_class("polyline", "trend-line")) == 4
    assert len(dom.with_class("circle", "point", "current")) == 4
    assert "versions.postgres 15.8" in text

    # nothing the page would fetch: no script, no external reference in any attribute
    assert not [t for t, _ in dom.elements if t in ("script", "link", "img", "iframe", "object")]
    for tag, attrs in dom.elements:
        for name, value in attrs.items():
            assert not re.search(r"(https?:)?//", value), f"<{tag} {name}={value!r}>"
