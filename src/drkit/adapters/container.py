"""Running a client tool inside a service's container (`docker exec`), for services that
publish no port or accept some connections only from inside (PostgreSQL replication).

Secrets never reach a command line: they go in a 0600 `--env-file` that the docker client
reads and sends to the daemon over its socket; the file lives as long as the `with`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from drkit.domain.errors import ConfigError, UsageError
from drkit.domain.stack import RuntimeSpec
from drkit.infra.proc import find_tool, secret_file


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
