"""Where a restore puts Redis's files: decided by the server and its configuration, never by
the backup. A manifest records the layout the server had when it was backed up; whoever
can write the repository can write that record too (`dbfilename: /etc/cron.d/x`), so it
is never used to decide where anything goes.

- The server answers: its own `CONFIG GET` (what it runs with now).
- The server is down: the configuration it starts with. Its command line (a local
  runtime's `command`, a container's command from `docker inspect`, a systemd unit's
  ExecStart) and the configuration file named there when this host can read it, over
  Redis's defaults. A file only the container can read is refused: start the server.

Every name is then checked as a plain name (no `/`, not `..`) to be joined to the data
directory: where this host sees it (runtime.data_dir, a container's volume), or the
configured `dir` when it is absolute.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from drkit.adapters.redis.client import Layout
from drkit.domain.errors import OperationError, UsageError
from drkit.domain.names import require_plain_name
from drkit.domain.stack import Service
from drkit.engines.redis.files import host_dir, open_server

DEFAULTS = {
    "dir": "./",
    "dbfilename": "dump.rdb",
    "appendonly": "no",
    "appendfilename": "appendonly.aof",
    "appenddirname": "appendonlydir",
}
SERVER = "redis-server"
MAX_INCLUDES = 16


@dataclass(frozen=True)
class Target:
    """The server being restored as found: its files' layout, where they are, its version."""

    layout: Layout
    data_dir: Path
    version: str | None  # None: the server was down
    source: str  # where the layout came from, for the report


def find_target(service: Service) -> Target:
    """The live server's layout when it answers; else its configuration's. Names checked."""
    with open_server(service) as server:
        if server.answers():
            layout, version, source = server.layout(), server.version(), "the running server"
        else:
            layout, source = configured_layout(service)
            version = None
    require_plain(layout, source)
    data_dir = host_dir(service)
    if data_dir is None:
        if not Path(layout.dir).is_absolute():
            raise UsageError(
                f"services.{service.name}: the server is down and its configuration gives no absolute "
                f"`dir` ({layout.dir!r}): set runtime.data_dir to its data directory, or start it",
            )
        data_dir = Path(layout.dir)
    return Target(layout, data_dir, version, source)


def require_plain(layout: Layout, source: str) -> None:
    for key in ("dbfilename", "appendfilename", "appenddirname"):
        require_plain_name(str(getattr(layout, key)), f"{key} from {source}")


def configured_layout(service: Service) -> tuple[Layout, str]:
    """The layout the server starts with, from its configuration (see the module docstring)."""
    command, where = _command_line(service)
    at = next((i for i, a in enumerate(command) if Path(a).name.startswith(SERVER)), None)
    if at is None:
        raise UsageError(
            f"{service.name} is down and {where} does not run {SERVER} directly ({shlex.join(command)!r}): "
            "drkit cannot tell its layout; start the server (drkit then asks it), then restore"
        )
    argv = command[at:]
    settings = dict(DEFAULTS)
    config_file, options = split_argv(argv)
    if config_file is not None:
        text = _read_config(service, config_file, where)
        settings.update(parse_config(text, Path(config_file).parent))
    settings.update(options)
    layout = Layout(
        dir=settings["dir"],
        dbfilename=settings["dbfilename"],
        appendonly=settings["appendonly"].lower() == "yes",
        appenddirname=settings["appenddirname"],
        appendfilename=settings["appendfilename"],
    )
    source = f"the configuration ({where}{', ' + config_file if config_file else ''}; the server was down)"
    return layout, source


def split_argv(argv: list[str]) -> tuple[str | None, dict[str, str]]:
    """`redis-server [config-file] [--name value ...]`: the file and the options (last wins)."""
    rest = argv[1:]
    config_file = None
    if rest and not rest[0].startswith("-"):
        config_file, rest = rest[0], rest[1:]
    options: dict[str, str] = {}
    i = 0
    while i < len(rest):
        word = rest[i]
        if word.startswith("--"):
            name, _, inline = word[2:].partition("=")
            values = []
            i += 1
            while i < len(rest) and not rest[i].startswith("--"):
                values.append(rest[i])
                i += 1
            value = inline or " ".join(values)
            if name.lower() in DEFAULTS:
                options[name.lower()] = value
            continue
        i += 1
    return config_file, options


def parse_config(text: str, base: Path, depth: int = 0) -> dict[str, str]:
    """The layout directives of a redis.conf (`include`d files followed, absolute or
    relative to the including file's directory); the last one wins, as in Redis."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"redis configuration line not understood: {line!r} ({exc})") from exc
        name, values = words[0].lower(), words[1:]
        if name == "include" and values:
            if depth >= MAX_INCLUDES:
                raise UsageError("redis configuration: too many nested includes")
            path = Path(values[0]) if Path(values[0]).is_absolute() else base / values[0]
            found.update(parse_config(_read(path), path.parent, depth + 1))
        elif name in DEFAULTS and values:
            found[name] = values[0]
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise OperationError(f"cannot read the redis configuration {path}: {exc.strerror or exc}") from exc


def _read_config(service: Service, path: str, where: str) -> str:
    if service.runtime.type == "compose":
        raise UsageError(
            f"{service.name} is down and its configuration file {path} is inside its container "
            f"({where}): start the server (drkit then reads its layout from it), then restore"
        )
    return _read(Path(path))


def _command_line(service: Service) -> tuple[list[str], str]:
    runtime = service.runtime
    if runtime.type == "local":
        return list(runtime.command), "runtime.command"
    if runtime.type == "compose":
        from drkit.runtimes.compose import ComposeRuntime

        config = ComposeRuntime(runtime, name=service.name).inspect().get("Config", {})
        argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        return [str(a) for a in argv], f"container {runtime.container}"
    if runtime.type == "systemd":
        return _exec_start(service), f"unit {runtime.unit}"
    raise UsageError(
        f"{service.name}: the server is down and drkit cannot read a {runtime.type} runtime's layout"
    )


def _exec_start(service: Service) -> list[str]:
    """A unit's ExecStart argv (`systemctl show -p ExecStart --value`: `{ path=... ; argv[]=A B ; ...}`)."""
    from drkit.infra.proc import find_tool, run

    systemctl = find_tool("systemctl", service.runtime.bin_dir)
    shown = run([systemctl, "show", "-p", "ExecStart", "--value", str(service.runtime.unit)], timeout=30)
    _, _, rest = shown.stdout.partition("argv[]=")
    return shlex.split(rest.partition(" ;")[0])
