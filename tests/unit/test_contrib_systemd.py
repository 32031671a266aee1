"""contrib/systemd/drkit-metrics.service: systemd accepts it, and the command it runs serves
the metrics (its ExecStart and Environment, run as systemd would, against a test stack)."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from drkit.infra.wait import wait_for

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "drkit-metrics.service"
DRKIT = Path(sys.executable).with_name("drkit")
STACK = """\
version: 1
stack: demo
repositories:
  local: {type: fs, path: ./repo}
services:
  cache: {kind: redis, url: "redis://127.0.0.1:1/0", rpo: 15m}
"""


def service_section() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing (Debian: systemd)"
    local = tmp_path / "drkit-metrics.service"
    local.write_text(UNIT.read_text().replace("/usr/local/bin/drkit", str(DRKIT)))
    result = subprocess.run(
        [tool, "verify", str(local)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_units_command_serves_metrics(tmp_path: Path) -> None:
    service = service_section()
    [exec_start] = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == "/usr/local/bin/drkit" and argv[1:3] == ["metrics", "--listen"]
    env = dict(e.split("=", 1) for e in service["Environment"])
    assert env == {"DRKIT_CONFIG": "/etc/drkit/stack.yaml"}
    # the same command, with this test's drkit, stack.yaml and a free port
    (tmp_path / "stack.yaml").write_text(STACK)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [str(DRKIT), *argv[1:3], f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        argv,
        env={**os.environ, "DRKIT_CONFIG": str(tmp_path / "stack.yaml")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return str(response.read().decode())

        text = wait_for(scrape, timeout=60, what="the metrics endpoint", retry_on=(OSError,))
        assert 'drkit_backups{service="cache",type="rdb"} 0.0' in text
        assert 'drkit_status_red{service="cache"} 1.0' in text
    finally:
        proc.send_signal(signal.SIGTERM)  # what systemd sends (KillSignal)
        proc.wait(timeout=30)
    assert service["KillSignal"] == ["SIGTERM"]
