"""A service run as a docker container, as nself makes them (`${PROJECT_NAME}_<service>`).

Thin by design: every operation is one `docker` command on the existing container
(`docker start`, not `docker compose up`), so drkit never recreates a container or
touches its volumes. Health is not judged here: `start` returns once docker accepted it.
"""

from __future__ import annotations

import json
from typing import Any

from drkit.domain.errors import OperationError, UsageError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.proc import Completed, find_tool, last_line, run
from drkit.runtimes.port import Fenced

COMMAND_TIMEOUT = 60.0


class ComposeRuntime:
    """One container, driven through the `docker` CLI (found on PATH or in runtime.bin_dir)."""

    def __init__(self, spec: RuntimeSpec, *, name: str = "") -> None:
        if not spec.container:
            what = f"service {name}" if name else "a compose runtime"
            raise UsageError(f"{what} needs runtime.container (e.g. nchat_postgres)")
        self.container = spec.container
        self.spec = spec

    @property
    def description(self) -> str:
        return f"container {self.container}"

    def _docker(self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True) -> Completed:
        docker = find_tool("docker", self.spec.bin_dir)
        result = run([docker, *args], timeout=timeout, check=False)
        if check and result.returncode != 0:
            why = last_line(result.stderr, result.stdout)
            raise OperationError(f"docker {args[0]} {self.container} failed: {why}")
        return result

    def start(self) -> None:
        self._docker("start", self.container)

    def stop(self, timeout: float = 60.0) -> None:
        # docker sends SIGTERM, then SIGKILL after -t seconds; allow it that long and more.
        self._docker("stop", "-t", str(int(timeout)), self.container, timeout=timeout + 30)

    def is_running(self) -> bool:
        """False for a stopped or missing container; True while running (paused included)."""
        result = self._docker("inspect", "-f", "{{.State.Running}}", self.container, check=False)
        return result.returncode == 0 and result.stdout.strip() == "true"

    def pause(self) -> None:
        self._docker("pause", self.container)

    def unpause(self) -> None:
        self._docker("unpause", self.container)

    def fence(self, timeout: float, *, immediate: bool) -> Fenced:
        """Its restart policy set to `no` first (so neither docker's daemon restarting nor a
        reboot starts it again), then `docker stop` (`docker kill` when `immediate`), then
        the container seen stopped with no process."""
        policy = self._state()[2]
        self._docker("update", "--restart=no", self.container)
        if immediate:
            self._docker("kill", self.container, check=False)  # an exited container: fine
        self.stop(timeout)
        running, pid, now = self._state()
        undo = f"docker update --restart={policy} {self.container}" if policy not in ("", "no") else ""
        lasting = f"restart policy {now} (was {policy or 'none'})"
        return Fenced("killed" if immediate else "stopped", lasting, not running and pid == 0, undo)

    def _state(self) -> tuple[bool, int, str]:
        """(running, main pid, restart policy) as docker inspect says."""
        fmt = "{{.State.Running}} {{.State.Pid}} {{.HostConfig.RestartPolicy.Name}}"
        words = self._docker("inspect", "-f", fmt, self.container).stdout.split()
        if len(words) < 2 or not words[1].isdigit():
            raise OperationError(f"docker inspect {self.container}: unexpected state {' '.join(words)!r}")
        return words[0] == "true", int(words[1]), words[2] if len(words) > 2 else ""

    def exec(self, command: list[str], *, timeout: float = COMMAND_TIMEOUT) -> Completed:
        """Run a command inside the container; the caller judges its exit code."""
        return self._docker("exec", self.container, *command, timeout=timeout, check=False)

    def inspect(self) -> dict[str, Any]:
        """`docker inspect` of the container (its first and only element)."""
        result = self._docker("inspect", self.container)
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise OperationError(f"docker inspect {self.container}: not JSON ({exc})") from exc
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise OperationError(f"docker inspect {self.container}: unexpected answer")
        first: dict[str, Any] = data[0]
        return first

    def logs(self, *, tail: int = 100) -> str:
        """The last `tail` lines the container wrote (stdout and stderr, with timestamps)."""
        result = self._docker("logs", "--tail", str(tail), "--timestamps", self.container)
        return result.stdout + result.stderr

    def volume_mount(self, destination: str | None = None) -> tuple[str, str]:
        """(volume name, container path) of the named volume mounted at `destination`, or
        of runtime.volume, or of the container's only named volume."""
        mounts = [m for m in self.inspect().get("Mounts") or [] if m.get("Type") == "volume"]
        wanted = self.spec.volume
        for m in mounts:
            if (wanted and m.get("Name") == wanted) or (destination and m.get("Destination") == destination):
                return str(m["Name"]), str(m["Destination"])
        if not wanted and not destination and len(mounts) == 1:
            return str(mounts[0]["Name"]), str(mounts[0]["Destination"])
        names = ", ".join(str(m.get("Name")) for m in mounts) or "none"
        raise OperationError(
            f"container {self.container}: cannot tell its data volume (named volumes: {names}); "
            "set runtime.volume"
        )

    def volume_path(self, volume: str) -> str:
        """Where the volume's files are on this host, as the daemon says (`docker volume
        inspect`): Docker Desktop, rootless Docker and custom data roots differ."""
        result = self._docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume)
        path = result.stdout.strip()
        if not path.startswith("/"):
            raise OperationError(f"docker volume inspect {volume}: no mount point ({path!r})")
        return path

    def env(self) -> dict[str, str]:
        """The container's configured environment (Config.Env)."""
        pairs = self.inspect().get("Config", {}).get("Env") or []
        return dict(str(p).split("=", 1) for p in pairs if "=" in str(p))

    def image_ids(self, user: str) -> tuple[int, int]:
        """uid and gid of `user` in the container's image (a throwaway container: `id`)."""
        image = str(self.inspect().get("Config", {}).get("Image") or "")
        ids = []
        for flag in ("-u", "-g"):
            result = self._docker("run", "--rm", "--network", "none", "--entrypoint", "id", image, flag, user)
            ids.append(result.stdout.strip())
        if not all(i.isdigit() for i in ids):
            raise OperationError(f"image {image}: no user {user} ({ids})")
        return int(ids[0]), int(ids[1])
