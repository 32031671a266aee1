"""Piped output never breaks a message: a path longer than the line stays whole on its line.

drkit's text goes to logs and scripts as often as to a terminal. At 160 columns, a report
written to a deep directory came out as "... written to \\n/tmp/.../report.html"
(test_report_by_run_id_writes_each_format failed when pytest's directory grew longer).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

LONG = "/srv/" + "/".join(f"directory-{i:02d}" for i in range(20)) + "/report.html"


@pytest.mark.parametrize("stream", ["console", "err_console"])
def test_a_message_longer_than_the_line_is_one_line(stream: str) -> None:
    code = f"from drkit.cli.render import {stream} as c; c.print('report written to {LONG}')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    text = out.stdout if stream == "console" else out.stderr
    assert len(LONG) > 200
    assert text == f"report written to {LONG}\n"
