"""Runtimes against a recorded contract.

No Docker engine or systemd runs here: a fake `docker` / `systemctl` is put first on PATH.
It records its arguments and answers as the real one documents (`docker inspect -f
'{{.State.Running}}' NAME` prints `true`; `systemctl is-active UNIT` prints `active` and
exits 0, else `inactive` and exits 3; an unknown container is "Error: No such object").
The local-process runtime runs real processes.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from drkit.domain.errors import ConfigError, OperationError, UsageError
from drkit.domain.stack import RuntimeSpec, Service
from drkit.runtimes.compose import ComposeRuntime
from drkit.runtimes.factory import runtime_for
from drkit.runtimes.local_postgres import LocalPostgres
from drkit.runtimes.local_process import LocalProcess
from drkit.runtimes.systemd import SystemdRuntime

FAKE_DOCKER = """
import json, os, sys
args = sys.argv[1:]
state_path = os.environ["FAKE_STATE"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
state = json.load(open(state_path))
def save():
    json.dump(state, open(state_path, "w"))
def missing(name):
    sys.stderr.write(f"Error: No such object: {name}\\n")
    sys.exit(1)
cmd, rest = args[0], args[1:]
name = rest[-1] if rest else ""
if cmd != "exec" and name not in state:
    missing(name)
if cmd in ("start", "unpause"):
    state[name] = "running"; save(); print(name)
elif cmd == "stop":
    state[name] = "exited"; save(); print(name)
elif cmd == "pause":
    state[name] = "paused"; save(); print(name)
elif cmd == "inspect" and rest[0] == "-f":
    print("true" if state[name] in ("running", "paused") else "false")
elif cmd == "inspect":
    print(json.dumps([{"Name": "/" + name, "State": {"Status": state[name]}}]))
elif cmd == "logs":
    print("2026-01-01T00:00:00Z ready to accept connections")
elif cmd == "exec":
    if rest[0] not in state: missing(rest[0])
    print("exec:" + " ".join(rest[1:])); sys.exit(0)
else:
    sys.stderr.write(f"unknown command {cmd}\\n"); sys.exit(125)
"""

FAKE_SYSTEMCTL = """
import json, os, sys
args = sys.argv[1:]
state_path = os.environ["FAKE_STATE"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
state = json.load(open(state_path))
words = [a for a in args if not a.startswith("--")]
cmd, unit = words[0], words[-1]
if unit not in state:
    if cmd == "is-active":
        print("inactive"); sys.exit(3)
    sys.stderr.write(f"Failed to {cmd} {unit}: Unit {unit} not found.\\n"); sys.exit(5)
if cmd == "start":
    state[unit] = "active"
elif cmd == "stop":
    state[unit] = "inactive"
elif cmd == "is-active":
    print(state[unit]); sys.exit(0 if state[unit] == "active" else 3)
json.dump(state, open(state_path, "w"))
"""


class Fake:
    def __init__(self, bin_dir: Path, name: str, script: str, state: dict[str, str]) -> None:
        self.log = bin_dir / f"{name}.log"
        self.state = bin_dir / f"{name}.state.json"
        self.state.write_text(json.dumps(state))
        exe = bin_dir / name
        exe.write_text(f"#!{sys.executable}\n" + textwrap.dedent(script))
        exe.chmod(0o755)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


@pytest.fixture
def docker(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    fake = Fake(fake_bin, "docker", FAKE_DOCKER, {"nchat_postgres": "exited"})
    monkeypatch.setenv("FAKE_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_STATE", str(fake.state))
    return fake


@pytest.fixture
def systemctl(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    fake = Fake(fake_bin, "systemctl", FAKE_SYSTEMCTL, {"redis-server.service": "inactive"})
    monkeypatch.setenv("FAKE_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_STATE", str(fake.state))
    return fake


def compose(container: str = "nchat_postgres") -> ComposeRuntime:
    return ComposeRuntime(RuntimeSpec(type="compose", container=container), name="postgres")


# --- docker compose -------------------------------------------------------------------


def test_compose_start_stop_and_running_state(docker: Fake) -> None:
    runtime = compose()
    assert runtime.is_running() is False
    runtime.start()
    assert runtime.is_running() is True
    runtime.stop(timeout=20)
    assert runtime.is_running() is False
    assert docker.calls() == [
        ["inspect", "-f", "{{.State.Running}}", "nchat_postgres"],
        ["start", "nchat_postgres"],
        ["inspect", "-f", "{{.State.Running}}", "nchat_postgres"],
        ["stop", "-t", "20", "nchat_postgres"],
        ["inspect", "-f", "{{.State.Running}}", "nchat_postgres"],
    ]


def test_compose_pause_unpause_exec_inspect_logs(docker: Fake) -> None:
    runtime = compose()
    runtime.start()
    runtime.pause()
    assert runtime.inspect()["State"]["Status"] == "paused"
    runtime.unpause()
    assert runtime.inspect()["State"]["Status"] == "running"
    done = runtime.exec(["pg_isready", "-U", "postgres"])
    assert (done.returncode, done.stdout.strip()) == (0, "exec:pg_isready -U postgres")
    assert "ready to accept connections" in runtime.logs(tail=50)
    assert docker.calls()[1:] == [
        ["pause", "nchat_postgres"],
        ["inspect", "nchat_postgres"],
        ["unpause", "nchat_postgres"],
        ["inspect", "nchat_postgres"],
        ["exec", "nchat_postgres", "pg_isready", "-U", "postgres"],
        ["logs", "--tail", "50", "--timestamps", "nchat_postgres"],
    ]


def test_compose_missing_container_is_not_running_and_start_names_it(docker: Fake) -> None:
    runtime = compose("nchat_nope")
    assert runtime.is_running() is False
    with pytest.raises(OperationError, match="docker start nchat_nope failed: .*No such object"):
        runtime.start()


def test_compose_needs_a_container_name() -> None:
    with pytest.raises(UsageError, match="service postgres needs runtime.container"):
        ComposeRuntime(RuntimeSpec(type="compose"), name="postgres")


# --- systemd --------------------------------------------------------------------------


def test_systemd_start_stop_pause_through_systemctl(systemctl: Fake) -> None:
    runtime = SystemdRuntime(RuntimeSpec(type="systemd", unit="redis-server.service"))
    assert runtime.is_running() is False
    runtime.start()
    assert runtime.is_running() is True
    runtime.pause()
    runtime.unpause()
    runtime.stop()
    assert runtime.is_running() is False
    unit = "redis-server.service"
    assert systemctl.calls() == [
        ["--no-ask-password", "is-active", unit],
        ["--no-ask-password", "start", unit],
        ["--no-ask-password", "is-active", unit],
        ["--no-ask-password", "kill", "--signal=SIGSTOP", unit],
        ["--no-ask-password", "kill", "--signal=SIGCONT", unit],
        ["--no-ask-password", "stop", unit],
        ["--no-ask-password", "is-active", unit],
    ]


def test_systemd_failure_names_the_unit(systemctl: Fake) -> None:
    runtime = SystemdRuntime(RuntimeSpec(type="systemd", unit="ghost.service"))
    assert runtime.is_running() is False
    with pytest.raises(OperationError, match="systemctl start ghost.service failed: .*not found"):
        runtime.start()


# --- local process --------------------------------------------------------------------

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "open(__import__('sys').argv[1], 'w').close()\nwhile True: time.sleep(0.1)",
]


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_local_process_start_pause_stop(tmp_path: Path) -> None:
    runtime = LocalProcess(RuntimeSpec(type="local", command=tuple(SLEEPER)), name="svc", state_dir=tmp_path)
    assert not runtime.is_running()
    runtime.start()
    pid = runtime.pid()
    assert pid is not None and runtime.is_running()
    assert (tmp_path / "run" / "svc.pid").read_text().split()[0] == str(pid)
    runtime.start()  # idempotent: no second process
    assert runtime.pid() == pid
    runtime.pause()
    wait_until(lambda: process_state(pid) == "T")
    runtime.unpause()
    wait_until(lambda: process_state(pid) != "T")
    runtime.stop(timeout=5)
    assert not runtime.is_running()
    assert not (tmp_path / "run" / "svc.pid").exists()
    assert not Path(f"/proc/{pid}").exists()


def test_local_process_escalates_to_sigkill_after_the_deadline(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    spec = RuntimeSpec(type="local", command=(*STUBBORN, str(ready)))
    runtime = LocalProcess(spec, name="stubborn", state_dir=tmp_path)
    runtime.start()
    wait_until(ready.exists)  # SIGTERM is ignored from here on
    began = time.monotonic()
    runtime.stop(timeout=0.5)
    assert time.monotonic() - began >= 0.5  # it waited the grace before the SIGKILL
    assert not runtime.is_running()


def test_local_process_ignores_a_pid_file_of_another_process(tmp_path: Path) -> None:
    runtime = LocalProcess(RuntimeSpec(type="local", command=tuple(SLEEPER)), name="svc", state_dir=tmp_path)
    (tmp_path / "run").mkdir()
    # our own pid, with a start time that is not ours: a reused pid
    (tmp_path / "run" / "svc.pid").write_text(f"{os.getpid()} 1\n")
    assert not runtime.is_running()


def test_local_process_missing_command_is_a_clear_error(tmp_path: Path) -> None:
    spec = RuntimeSpec(type="local", command=("/nonexistent/server",))
    with pytest.raises(OperationError, match="cannot start svc: /nonexistent/server"):
        LocalProcess(spec, name="svc", state_dir=tmp_path).start()


# --- the registry ---------------------------------------------------------------------


def service(kind: str, runtime: RuntimeSpec) -> Service:
    return Service(name="svc", kind=kind, runtime=runtime)


def test_factory_picks_the_runtime_by_type(tmp_path: Path) -> None:
    pg = RuntimeSpec(type="local", data_dir=str(tmp_path), bin_dir="/usr/lib/postgresql/15/bin")
    assert isinstance(runtime_for(service("postgres", pg), tmp_path), LocalPostgres)
    proc = RuntimeSpec(type="local", command=("true",))
    assert isinstance(runtime_for(service("http", proc), tmp_path), LocalProcess)
    box = RuntimeSpec(type="compose", container="nchat_redis")
    assert isinstance(runtime_for(service("redis", box), tmp_path), ComposeRuntime)
    unit = RuntimeSpec(type="systemd", unit="redis.service")
    assert isinstance(runtime_for(service("redis", unit), tmp_path), SystemdRuntime)


def test_factory_rejects_an_unknown_runtime(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown runtime 'podman'"):
        runtime_for(service("redis", RuntimeSpec(type="podman")), tmp_path)
