"""A fence lasts: a compose or systemd service fenced by a failover stays stopped when the
docker daemon restarts or the host reboots, and the fence says whether its process is gone.

These are recorded-contract FAKES of `docker` and `systemctl` (no Docker engine, no systemd
here), answering as their documentation says:
- docker (docs.docker.com, "Start containers automatically"): a container with restart
  policy `always` is started again when the daemon restarts, even after `docker stop`;
  `unless-stopped` is not when it was stopped by hand; `no` never is. `docker update
  --restart=no` changes the policy of an existing container. `docker inspect -f` with
  `{{.State.Running}} {{.State.Pid}} {{.HostConfig.RestartPolicy.Name}}` prints
  `false 0 no` for a stopped container with no policy.
- systemctl (systemctl(1)): `mask` links the unit to /dev/null in /etc/systemd/system (it
  survives reboots; it fails when a unit file of that name is already there, which `disable`
  does not need); a masked unit cannot be started (`Unit X is masked.`, exit 1); at boot
  only enabled, unmasked units start; `show -p ActiveState -p MainPID` prints `KEY=VALUE`.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drkit.domain.stack import Member, Replication, RuntimeSpec, Service
from drkit.engines.failover.cluster import Cluster
from drkit.engines.failover.fence import fence
from drkit.runtimes.compose import ComposeRuntime
from drkit.runtimes.systemd import SystemdRuntime
from tests.unit.test_runtimes_contract import Fake

DOCKER = """
import json, os, sys
args = sys.argv[1:]
path = os.environ["FAKE_STATE"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
state = json.load(open(path))
cmd, rest = args[0], args[1:]
name = rest[-1]
if name not in state:
    sys.stderr.write(f"Error: No such object: {name}\\n"); sys.exit(1)
c = state[name]
if cmd == "start":
    c.update(running=True, pid=4242, by_hand=False)
elif cmd == "stop" or cmd == "kill":
    if not c.get("stuck"):
        c.update(running=False, pid=0, by_hand=True)
elif cmd == "update":
    c["restart"] = [a.split("=", 1)[1] for a in rest if a.startswith("--restart=")][0]
elif cmd == "inspect" and rest[0] == "-f":
    if "RestartPolicy" in rest[1]:
        print(f"{str(c['running']).lower()} {c['pid']} {c['restart']}")
    else:
        print(str(c["running"]).lower())
elif cmd == "inspect":
    print(json.dumps([{"Name": "/" + name, "Mounts": [], "Config": {"Env": []}}]))
else:
    sys.stderr.write(f"unknown command {cmd}\\n"); sys.exit(125)
json.dump(state, open(path, "w"))
"""

SYSTEMCTL = """
import json, os, sys
args = sys.argv[1:]
path = os.environ["FAKE_STATE"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
state = json.load(open(path))
words = [a for a in args if not a.startswith("-")]
cmd, unit = words[0], words[-1]
u = state[unit]
if cmd == "start":
    if u["masked"]:
        sys.stderr.write(f"Failed to start {unit}: Unit {unit} is masked.\\n"); sys.exit(1)
    u.update(active=True, pid=777)
elif cmd in ("stop", "kill"):
    if not u.get("stuck"):
        u.update(active=False, pid=0)
elif cmd == "mask":
    if u.get("file_in_etc"):
        sys.stderr.write(f"Failed to mask unit: File /etc/systemd/system/{unit} already exists.\\n")
        sys.exit(1)
    u["masked"] = True
elif cmd == "unmask":
    u["masked"] = False
elif cmd in ("disable", "enable"):
    u["enabled"] = cmd == "enable"
elif cmd == "is-active":
    print("active" if u["active"] else "inactive"); sys.exit(0 if u["active"] else 3)
elif cmd == "show":
    print(f"ActiveState={'active' if u['active'] else 'inactive'}")
    print(f"MainPID={u['pid']}")
json.dump(state, open(path, "w"))
"""


def daemon_restart(fake: Fake) -> None:
    """What dockerd does with each container when it starts again (its restart policies)."""
    state = json.loads(fake.state.read_text())
    for c in state.values():
        if c["restart"] == "always" or (c["restart"] == "unless-stopped" and not c["by_hand"]):
            c.update(running=True, pid=4243)
    fake.state.write_text(json.dumps(state))


def reboot(fake: Fake) -> None:
    """What systemd starts at boot: the enabled units that are not masked."""
    state = json.loads(fake.state.read_text())
    for u in state.values():
        u.update(active=u["enabled"] and not u["masked"], pid=778 if u["enabled"] and not u["masked"] else 0)
    fake.state.write_text(json.dumps(state))


def _fake(bin_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str, script: str, state: object) -> Fake:
    fake = Fake(bin_dir, name, script, {})
    fake.state.write_text(json.dumps(state))
    monkeypatch.setenv("FAKE_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_STATE", str(fake.state))
    return fake


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH for the fake commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


@pytest.fixture
def docker(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    state = {"pg1": {"running": True, "pid": 4242, "restart": "always", "by_hand": False}}
    return _fake(fakes, monkeypatch, "docker", DOCKER, state)


@pytest.fixture
def systemctl(fakes: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    unit = {"active": True, "pid": 777, "enabled": True, "masked": False}
    state = {"postgresql@15-main.service": unit, "pg-etc.service": {**unit, "file_in_etc": True}}
    return _fake(fakes, monkeypatch, "systemctl", SYSTEMCTL, state)


def compose() -> ComposeRuntime:
    return ComposeRuntime(RuntimeSpec(type="compose", container="pg1"), name="postgres")


def test_a_plain_stop_comes_back_with_the_daemon(docker: Fake) -> None:
    """The fault the fence fixes: `docker stop` alone, restart policy `always`."""
    compose().stop(timeout=10)
    daemon_restart(docker)
    assert compose().is_running() is True


def test_compose_fence_survives_a_daemon_restart(docker: Fake) -> None:
    done = compose().fence(10, immediate=False)
    assert done.process_gone and "restart policy no (was always)" in done.lasting
    assert done.undo == "docker update --restart=always pg1"
    calls = [c[0] for c in docker.calls()]
    assert calls.index("update") < calls.index("stop")  # no window for the policy to act
    daemon_restart(docker)
    assert compose().is_running() is False


def test_compose_immediate_fence_kills_it(docker: Fake) -> None:
    done = compose().fence(10, immediate=True)
    assert done.how == "killed" and done.process_gone
    assert ["kill", "pg1"] in docker.calls()


def test_a_stuck_container_is_not_called_fenced(docker: Fake) -> None:
    state = json.loads(docker.state.read_text())
    state["pg1"]["stuck"] = True
    docker.state.write_text(json.dumps(state))
    assert compose().fence(10, immediate=True).process_gone is False


def unit(name: str = "postgresql@15-main.service") -> SystemdRuntime:
    return SystemdRuntime(RuntimeSpec(type="systemd", unit=name), name="postgres")


def test_a_plain_stop_comes_back_after_a_reboot(systemctl: Fake) -> None:
    unit().stop()
    reboot(systemctl)
    assert unit().is_running() is True


def test_systemd_fence_masks_and_survives_a_reboot(systemctl: Fake) -> None:
    done = unit().fence(10, immediate=False)
    assert done.process_gone and done.lasting == "unit masked"
    assert done.undo == "systemctl unmask postgresql@15-main.service"
    calls = [c[1] for c in systemctl.calls()]
    assert calls.index("mask") < calls.index("stop")
    reboot(systemctl)
    assert unit().is_running() is False
    with pytest.raises(Exception, match="masked"):
        unit().start()  # not even by hand until unmasked


def test_systemd_fence_disables_a_unit_it_cannot_mask(systemctl: Fake) -> None:
    done = unit("pg-etc.service").fence(10, immediate=True)
    assert done.lasting.startswith("unit disabled") and done.undo == "systemctl enable pg-etc.service"
    assert ["--no-ask-password", "kill", "--signal=SIGKILL", "pg-etc.service"] in systemctl.calls()
    reboot(systemctl)
    assert unit("pg-etc.service").is_running() is False


def test_the_failover_fence_of_a_compose_member_is_verified_and_lasting(docker: Fake, tmp_path: Path) -> None:
    """The engine's fence on a compose-run old primary (port closed here: 127.0.0.1:1)."""
    spec = RuntimeSpec(type="compose", container="pg1")
    old = Member("postgres", "host=127.0.0.1 port=1 dbname=app", spec, "postgres")
    svc = Service(name="postgres", kind="postgres", runtime=spec)
    cluster = Cluster(svc, Replication(members=(old,)), tmp_path)

    class Clock:
        def now(self) -> datetime:
            return datetime(2026, 1, 1, tzinfo=UTC)

    done = fence(cluster, old, timeout=5, immediate=True, clock=Clock())  # type: ignore[arg-type]
    assert done.verified, done.why_not
    assert "restart policy no (was always)" in done.said and "docker update --restart=always pg1" in done.said
    daemon_restart(docker)
    assert compose().is_running() is False
