"""Running a client tool inside a service's container (`docker exec`), for services that
publish no port or accept some connections only from inside (PostgreSQL replication).

Secrets never reach a command line: they go in a 0600 `--env-file` that the docker client
reads and sends to the daemon over its socket; the file lives as long as the `with`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from drkit.domain.errors import ConfigError, ToolError, UsageError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.proc import find_tool, run, secret_file

INSPECT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ContainerExec:
    """Turns a tool's argument list into `docker exec ... CONTAINER tool args`."""

    docker: str
    container: str
    user: str | None
    env_file: str | None

    def wrap(self, args: list[str]) -> list[str]:
        user = ["--user", self.user] if self.user else []
        env = ["--env-file", self.env_file] if self.env_file else []
        # The tool's name only: the container's own PATH finds its own version of it.
        return [self.docker, "exec", *user, *env, self.container, os.path.basename(args[0]), *args[1:]]


def env_file_text(values: Mapping[str, str]) -> bytes:
    """docker's env-file format: NAME=value to the end of the line, no quoting."""
    lines = []
    for name, value in values.items():
        if "\n" in value or "\r" in value or "\0" in value:
            raise ConfigError(f"{name}: a value with a line break cannot be handed to docker exec")
        lines.append(f"{name}={value}\n")
    return "".join(lines).encode()


@contextmanager
def container_exec(
    spec: RuntimeSpec, *, user: str | None, env: Mapping[str, str] | None = None
) -> Iterator[ContainerExec]:
    if spec.type != "compose" or not spec.container:
        raise UsageError("running a tool in a container needs runtime.type compose and runtime.container")
    docker = find_tool("docker", spec.bin_dir)
    if not env:
        yield ContainerExec(docker, spec.container, user, None)
        return
    with secret_file(env_file_text(env), prefix="drkit-envfile-") as path:
        yield ContainerExec(docker, spec.container, user, path)


def names_container(spec: RuntimeSpec, host: str) -> bool:
    """Whether a connection's host is the compose container itself (a name only the compose
    network resolves), as the nself preset writes for an unpublished PostgreSQL."""
    return spec.type == "compose" and bool(spec.container) and host == spec.container


def container_address(spec: RuntimeSpec) -> str | None:
    """The address this host reaches the container's own ports at, without a published port:
    127.0.0.1 on host networking, else its address on its (first, by name) network, which a
    Linux host routes to through the network's bridge. None when docker cannot say (the
    container is missing or stopped, docker is down): the caller dials the name, and fails
    with libpq's own message. Docker Desktop's container addresses live in a VM the host
    cannot reach: publish the port there."""
    if not spec.container:
        return None
    fmt = "{{json .HostConfig.NetworkMode}} {{json .NetworkSettings.Networks}}"
    try:
        docker = find_tool("docker", spec.bin_dir)
        result = run([docker, "inspect", "-f", fmt, spec.container], timeout=INSPECT_TIMEOUT, check=False)
    except ToolError:
        return None
    if result.returncode != 0:
        return None
    return _address(result.stdout)


def container_mounts(spec: RuntimeSpec) -> list[tuple[str, str]] | None:
    """(source on this host, destination in the container) of every mount; None when docker
    cannot say (no such container, docker down)."""
    if not spec.container:
        return None
    try:
        docker = find_tool("docker", spec.bin_dir)
        result = run(
            [docker, "inspect", "-f", "{{json .Mounts}}", spec.container],
            timeout=INSPECT_TIMEOUT,
            check=False,
        )
        mounts = json.loads(result.stdout) if result.returncode == 0 else None
    except (ToolError, json.JSONDecodeError):
        return None
    if not isinstance(mounts, list):
        return None
    return [(str(m.get("Source", "")), str(m.get("Destination", ""))) for m in mounts if isinstance(m, dict)]


def _address(inspected: str) -> str | None:
    mode_text, _, networks_text = inspected.strip().partition(" ")
    try:
        mode, networks = json.loads(mode_text), json.loads(networks_text or "null")
    except json.JSONDecodeError:
        return None
    if mode == "host":
        return "127.0.0.1"
    if not isinstance(networks, dict):
        return None
    for name in sorted(networks):
        address = (networks[name] or {}).get("IPAddress")
        if isinstance(address, str) and address:
            return address
    return None
